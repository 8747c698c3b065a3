#!/usr/bin/env bash
# The README demo: tokenizer + preprocessing of the real en/ko/ja/zh corpus, XLDA training of the
# tiny recipe on CPU, checkpoint, resume, loss summary. A few minutes on 2 cores.
# Options go to xlda/demo.py (--workdir, --docs-per-lang, --train-iters, --mock, --fresh).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
source scripts/env.sh
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
exec "$PY" -m xlda.demo "$@"
