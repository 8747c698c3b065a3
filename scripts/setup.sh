#!/usr/bin/env bash
# Idempotent environment set-up for CPU machines (dev boxes and CI): installs this checkout in
# editable mode with the CPU pins (and builds the optional C packing kernel). Fast (< 1 s) when
# everything is already there: scripts/setup_check.py reads metadata, imports nothing heavy.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Reinstall when a requirement of setup.py (with the dev, lingua, curate and posttrain extras) is missing or out of
# range, when xlda is installed from another checkout (CI clones main elsewhere; an editable
# install elsewhere would leave this checkout's C kernel unbuilt), or when the kernel is not
# built here.
ready=$($PY scripts/setup_check.py 2>/dev/null || echo "no: the readiness check failed")
if [ "$ready" != yes ] || [ "${XLDA_FORCE_SETUP:-0}" = 1 ]; then
  [ "$ready" = yes ] || echo "[setup] installing: ${ready#no: }"
  # torch first, alone and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
  $PY -m pip install --quiet --disable-pip-version-check -c constraints-cpu.txt torch==2.13.0
  $PY -m pip install --quiet --disable-pip-version-check -c constraints-cpu.txt -e '.[dev,lingua,curate,posttrain]'
fi
$PY scripts/setup_check.py --versions
