#!/usr/bin/env bash
# Prepared GPU check of the XLDA attention executors (~5 min on an H100/H200): equivalence tests
# (flex fwd+bwd, THD fused varlen vs the dense oracle) and timings vs causal SDPA.
# Results in $OUT (default /tmp/xlda_gpu_check). Usage: bash benchmarks/gpu_check.sh [gpu_check.py args]
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/xlda_gpu_check}"
export OUT PYTHONUNBUFFERED=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-8}"
mkdir -p "$OUT"
PY="$(command -v python3 || command -v python)"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null | tee "$OUT/nvidia-smi.txt"
"$PY" benchmarks/gpu_check.py "$@" 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
