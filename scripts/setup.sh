#!/usr/bin/env bash
# Idempotent environment set-up for CPU machines (dev boxes and CI): creates the project's
# virtual environment (.venv, see scripts/env.sh; PYTHON=... installs into that interpreter
# instead), installs this checkout in editable mode with the CPU pins and builds the C packing
# kernel. Fast (< 1 s) when everything is already there: scripts/setup_check.py reads metadata,
# imports nothing heavy.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env.sh
if [ -z "${PYTHON:-}" ] && [ ! -x "$PY" ]; then
  base=${XLDA_BASE_PYTHON:-python3}
  echo "[setup] creating the project environment $XLDA_VENV ($($base --version 2>&1)); source" \
       "$XLDA_VENV/bin/activate to use it, or set PYTHON=/path/to/python to install elsewhere"
  if ! $base -m venv "$XLDA_VENV"; then
    echo "[setup] error: '$base -m venv' failed (Debian/Ubuntu: apt install python3-venv;" \
         "or XLDA_BASE_PYTHON=python3.11, or PYTHON=/path/to/python to use an existing one)" >&2
    rm -rf "$XLDA_VENV"
    exit 1
  fi
fi
# Reinstall when a requirement of setup.py (with the dev, lingua, curate, posttrain, rlvr and eval extras) is
# missing or out of range, when xlda is installed from another checkout (CI clones main
# elsewhere; an editable install elsewhere would leave this checkout's C kernel unbuilt), or when
# the kernel is not built here.
ready=$($PY scripts/setup_check.py 2>/dev/null || echo "no: the readiness check failed")
if [ "$ready" != yes ] || [ "${XLDA_FORCE_SETUP:-0}" = 1 ]; then
  [ "$ready" = yes ] || echo "[setup] installing into $PY: ${ready#no: }"
  pip_=("$PY" -m pip install --disable-pip-version-check)
  # pip's progress, one line per package (its errors still go to stderr in full)
  progress() { awk '/^(Collecting|Installing collected|Successfully installed|Building)/ {
                    print "[setup] " $0; fflush() }'; }
  # torch first, alone and pinned: a bare `torch` requirement from PyPI is a multi-GB CUDA
  # build. A CPU wheel pip already finds locally (find-links, a mirror) wins; otherwise the
  # CPU wheel index. Its own requirements come with the package below.
  if ! "$PY" -c 'import sys, importlib.metadata as m; sys.exit(m.version("torch").split("+")[0] != "2.13.0")' 2>/dev/null; then
    echo "[setup] torch 2.13.0 (CPU)"
    "${pip_[@]}" --no-deps --no-index torch==2.13.0 2>/dev/null | progress ||
      "${pip_[@]}" --no-deps --index-url "${XLDA_TORCH_INDEX:-https://download.pytorch.org/whl/cpu}" \
        torch==2.13.0 | progress
  fi
  "${pip_[@]}" -c constraints-cpu.txt -e '.[dev,lingua,curate,posttrain,rlvr,eval]' | progress
fi
$PY scripts/setup_check.py --versions
