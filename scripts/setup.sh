#!/usr/bin/env bash
# Idempotent environment set-up for CPU machines (dev boxes and CI): installs this checkout in
# editable mode with the CPU pins (and builds the optional C packing kernel). Fast when
# everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
# Reinstall when deps are missing, when xlda is installed from another checkout (CI clones main
# elsewhere; an editable install elsewhere would leave this checkout's C kernel unbuilt), or when
# the kernel is not built here.
ready=$($PY - <<'PYEOF' 2>/dev/null || echo no
import importlib.metadata as md, json, os
import torch, megatron.core, hypothesis, transformers, lingua  # noqa: F401
# Any xlda record pointing here (the build's own xlda.egg-info in the checkout has no URL).
urls = [json.loads(d.read_text("direct_url.json") or "{}").get("url") for d in md.distributions()
        if d.metadata["Name"] == "xlda"]
here = "file://" + os.getcwd() in urls
import xlda.data._packing_kernel  # noqa: F401
print("yes" if here else "no")
PYEOF
)
if [ "$ready" != yes ] || [ "${XLDA_FORCE_SETUP:-0}" = 1 ]; then
  # torch first, alone and pinned: a bare `torch` requirement would pull a multi-GB CUDA build.
  $PY -m pip install --quiet --disable-pip-version-check -c constraints-cpu.txt torch==2.13.0
  $PY -m pip install --quiet --disable-pip-version-check -c constraints-cpu.txt -e '.[dev,lingua,curate]'
fi
$PY -W ignore -c "import torch, megatron.core; print(f'[setup] torch {torch.__version__}, megatron-core {megatron.core.__version__}')"
