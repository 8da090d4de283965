#!/usr/bin/env bash
# The main job on its embedded default, offline: fine-tune the MiniLM teacher on the built-in
# Rotten Tomatoes snippets (reused when present), search thin students and loss mixtures on the speed
# space within the config's budget, print the Pareto front, and export by the config's export rule
# (the most accurate student at least 3x faster than the teacher; HF folder, ONNX, int8).
# Extra arguments go to every command (e.g. --set seed=1).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
config=${DEMO_CONFIG:-configs/demo.yaml}
start=$(date +%s)
.venv/bin/autodistill teacher "$config" "$@"
.venv/bin/autodistill search "$config" "$@"
.venv/bin/autodistill pareto "$config" "$@"
.venv/bin/autodistill export "$config" "$@"
echo "demo finished in $(( $(date +%s) - start ))s"
