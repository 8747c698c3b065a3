# Sourced by scripts/setup.sh, scripts/test.sh, examples/demo.sh and run_ablation.sh: which
# Python the project's commands use. Default: the project's own virtual environment `.venv` in
# the checkout (created by setup.sh, reused after), so a newcomer's system Python is never
# re-pointed at the clone. PYTHON=/path/to/python uses that interpreter as it is (a conda env, a
# cluster module); XLDA_VENV=DIR puts the environment elsewhere.
# Sets PY, and puts the environment's bin/ first on PATH so `python` in scripts and tests is it.
XLDA_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
if [ -n "${PYTHON:-}" ]; then
  PY=$PYTHON
else
  XLDA_VENV=${XLDA_VENV:-$XLDA_ROOT/.venv}
  PY=$XLDA_VENV/bin/python
  export VIRTUAL_ENV=$XLDA_VENV
  export PATH="$XLDA_VENV/bin:$PATH"
fi
