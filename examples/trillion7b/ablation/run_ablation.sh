#!/usr/bin/env bash
# The XLDA ablation v3, default run: the bundled LibreOffice corpus aligned by page and cut into
# aligned line chunks, the 7B mix, the `tiny` model for 2,000 iterations, 5 seeds x arms A (xlda +
# affinity packing), B (document mask, A's batches), C (xlda, today's packing); without arguments
# it regenerates RESULTS.md and ablation.png here (~50 min on 2 idle CPU cores; finished runs are
# cached and reused, so a second call only rewrites the report). Arguments go to run_ablation.py
# (--size gpu, --arms A,B,C,D, --input LANG=PATH --group-key FIELD for another corpus, ...) and
# then the report stays in the run's results directory (pass --results-md to put it elsewhere).
set -euo pipefail
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore}
if [ "$#" -eq 0 ]; then
    set -- --results-md examples/trillion7b/ablation/RESULTS.md
fi
source scripts/env.sh  # the project's environment (.venv, or PYTHON=...)
exec "$PY" examples/trillion7b/ablation/run_ablation.py "$@"
