#!/usr/bin/env bash
# Wheels for benchmarks/gpu_check.sh on an offline GPU machine that has only Python 3.12 and a
# CUDA torch: megatron-core and the few pure/binary packages xlda's check imports, downloaded for
# CPython 3.12 on manylinux x86_64 (whatever this machine's Python is), plus a pure-python wheel
# of xlda itself (the optional C packing kernel left out). Run where there is network:
#   bash benchmarks/prepare_wheels.sh [DIR]   (default .whl, git-ignored)
# then copy DIR with the checkout; gpu_check.sh installs from it with pip --no-index.
set -euo pipefail
cd "$(dirname "$0")/.."
DIR="${1:-.whl}"
PYVER="${PYVER:-3.12}"
PLAT="${PLAT:-manylinux_2_28_x86_64}"
mkdir -p "$DIR"
# megatron-core without its dependencies (torch comes with the machine); then its own
# dependencies and xlda's import-time ones (pyyaml; psutil for dist_checkpointing), binary only.
python3 -m pip download --no-deps --only-binary=:all: --python-version "$PYVER" \
    --implementation cp --platform "$PLAT" --platform manylinux2014_x86_64 -d "$DIR" \
    "megatron-core==0.16.1"
python3 -m pip download --no-deps --only-binary=:all: --python-version "$PYVER" \
    --implementation cp --platform "$PLAT" --platform manylinux2014_x86_64 -d "$DIR" \
    "numpy>=1.26,<2.4" "packaging" "pyyaml>=6" "psutil>=5.9"
rm -rf build/xlda_wheel
XLDA_PURE_PYTHON=1 python3 -m pip wheel --no-deps --no-build-isolation -w "$DIR" . \
    >/dev/null
rm -rf build
ls -l "$DIR"
total=$(du -cb "$DIR"/*.whl | tail -1 | cut -f1)
echo "total: $((total / 1024 / 1024)) MiB in $DIR (limit 64 MiB)"
[ "$total" -lt $((64 * 1024 * 1024)) ] || { echo "over 64 MiB"; exit 1; }
