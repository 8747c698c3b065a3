#!/usr/bin/env bash
# Idempotent environment set-up for CPU machines (dev boxes and CI): installs the package in
# editable mode with the CPU pins. Fast when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if ! $PY -c "import torch, megatron.core, xlda, hypothesis, transformers, lingua" >/dev/null 2>&1 \
   || [ "${XLDA_FORCE_SETUP:-0}" = 1 ]; then
  # torch first, alone and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
  $PY -m pip install --quiet --disable-pip-version-check -c constraints-cpu.txt torch==2.13.0
  $PY -m pip install --quiet --disable-pip-version-check -c constraints-cpu.txt -e '.[dev,lingua]'
fi
$PY -c "import torch, megatron.core; print(f'[setup] torch {torch.__version__}, megatron-core {megatron.core.__version__}')"
