#!/usr/bin/env python
"""Score a checkpoint on lm-eval benchmarks, e.g.
  python tools/evaluate.py --load runs/demo/ckpt --suite trillion --data-dir /data/lm_eval
See docs/evaluate.md and xlda/evaluate/cli.py for the flags."""
import sys

from xlda.evaluate.cli import main

if __name__ == "__main__":
    sys.exit(main())
