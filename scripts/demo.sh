#!/usr/bin/env bash
# The main job on its embedded default: fine-tune the offline MiniLM teacher on the built-in
# Rotten Tomatoes sentiment snippets (reused when present) and distill a student. Offline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
.venv/bin/autodistill teacher configs/demo.yaml "$@"
.venv/bin/autodistill distill configs/demo.yaml "$@"
