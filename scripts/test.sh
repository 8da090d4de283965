#!/usr/bin/env bash
# Runs the whole test suite, slow real-data tests included (offline). Does its own set-up.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# The many-workers tests run a real PostgreSQL server: tests/pg.py starts one of its own on 127.0.0.1
# (a temporary cluster, a random password) and stops it at the end. Debian's package provides it.
if ! command -v pg_ctl >/dev/null && ! ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
  else
    echo "PostgreSQL's server is not installed: apt-get install postgresql (or your system's package)" >&2
    exit 1
  fi
fi
export AUTODISTILL_REQUIRE_POSTGRES=1  # in CI a missing server or driver fails the tests, never skips them
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 HF_DATASETS_OFFLINE=1 TOKENIZERS_PARALLELISM=false
# lint and formatting first (a second each): the same ruff version everywhere, pinned in pyproject
.venv/bin/ruff check --quiet .
.venv/bin/ruff format --check --quiet .
exec .venv/bin/python -m pytest "$@"
