#!/usr/bin/env python3
"""The XLDA ablation v3 (issues #14, #20): see xlda/ablation/cli.py and RESULTS.md here.

    python examples/trillion7b/ablation/run_ablation.py [--workdir DIR] [--seeds 5]
        [--arms A,B,C[,D]] [--affinity-p 1] [--size tiny|small|medium|gpu]
        [--mix 7b|uniform|en=..,ko=..] [--chunk-chars 200] [--near-dup 0.8]
        [--input LANG=PATH ... --group-key FIELD [--group-pattern REGEX]] ...
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # run from any directory

from xlda.ablation.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
