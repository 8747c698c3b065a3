#!/usr/bin/env bash
# XLDA vs document vs causal masks on real en/ko/ja/zh text, tiny recipe, 3 seeds x 300 iterations
# (~8 min on 2 idle CPU cores, 20-30 min when the cores are shared; data preparation ~1 min, cached).
# Options go to run_ablation.py (--workdir, --seeds, --train-iters, --size, --mix, ...).
set -euo pipefail
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore}
exec python3 examples/trillion7b/ablation/run_ablation.py "$@"
