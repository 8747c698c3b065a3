#!/usr/bin/env bash
# The device check of the GPU hot path (~10 min on one H100/H200): one table, see
# benchmarks/gpu_check.py. Works on a bare GPU machine with Python 3.12 and a CUDA torch but no
# megatron-core and no network: it installs megatron-core, its dependencies and xlda from the
# wheel folder that benchmarks/prepare_wheels.sh prepared ($XLDA_WHEELS, default .whl) into a
# venv that sees the system torch. docs/gpu_check.md has the steps.
#   bash benchmarks/gpu_check.sh [--dry-run] [gpu_check.py args]   (--dry-run: CPU, tiny shapes)
# Results in $OUT (default /tmp/xlda_gpu_check): table.txt, summary.json, one log per run.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-/tmp/xlda_gpu_check}"
WHEELS="${XLDA_WHEELS:-.whl}"
export OUT PYTHONUNBUFFERED=1 OMP_NUM_THREADS="${OMP_NUM_THREADS:-8}"
mkdir -p "$OUT"
PY="$(command -v python3 || command -v python)"
if ! "$PY" -c "import megatron.core" 2>/dev/null; then
    if ! ls "$WHEELS"/megatron_core-*.whl >/dev/null 2>&1; then
        echo "megatron-core is not importable and $WHEELS has no wheels: run" \
             "'bash benchmarks/prepare_wheels.sh' where there is network and copy $WHEELS here" >&2
        exit 2
    fi
    VENV="$OUT/venv"
    [ -x "$VENV/bin/python" ] || "$PY" -m venv --system-site-packages "$VENV" || exit 2
    PY="$VENV/bin/python"
    # --no-deps: torch is the machine's; the folder holds exactly what the check imports
    "$PY" -m pip install --quiet --no-index --no-deps --find-links "$WHEELS" "$WHEELS"/*.whl \
        || { echo "installing the wheels from $WHEELS failed" >&2; exit 2; }
    echo "installed from $WHEELS into $VENV: $(ls "$WHEELS" | tr '\n' ' ')"
fi
if [[ " $* " != *" --dry-run "* ]]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null \
        | tee "$OUT/nvidia-smi.txt"
fi
"$PY" benchmarks/gpu_check.py "$@" 2>&1 | tee "$OUT/gpu_check.log"
exit "${PIPESTATUS[0]}"
