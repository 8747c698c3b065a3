#!/usr/bin/env python3
"""The XLDA mask ablation (issue #14): see xlda/ablation/cli.py and RESULTS.md here.

    python examples/trillion7b/ablation/run_ablation.py [--workdir DIR] [--seeds 5]
        [--size tiny|small|medium|gpu] [--mix 7b|uniform|en=..,ko=..]
        [--input LANG=PATH ... --group-key FIELD [--group-pattern REGEX]] ...
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[3]))  # run from any directory

from xlda.ablation.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main())
