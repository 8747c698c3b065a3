#!/usr/bin/env bash
# The README's test command: set up (idempotent) and run the default test suite (not slow) in
# the project's environment (scripts/env.sh: .venv, or PYTHON=...).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
# Torch on 2 cores: oversubscription makes the multi-process tests crawl.
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
exec "$PY" -m pytest -m "not slow" -q "$@"
