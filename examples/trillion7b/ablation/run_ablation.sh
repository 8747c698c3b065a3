#!/usr/bin/env bash
# XLDA vs document vs causal masks on real en/ko/ja/zh text, tiny recipe, 3 seeds (~20 min on
# 2 CPU cores). Options go to run_ablation.py (--workdir, --seeds, --train-iters, --size, ...).
set -euo pipefail
cd "$(dirname "$0")/../../.."
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
export PYTHONWARNINGS=${PYTHONWARNINGS:-ignore}
exec python3 examples/trillion7b/ablation/run_ablation.py "$@"
