#!/usr/bin/env python
"""Benchmark scores against tokens trained per language, e.g.
  python tools/plot_run.py --metrics runs/x/ckpt/metrics.jsonl
(a run trained with --eval-suite FILE --eval-suite-interval N). See xlda/evaluate/plot.py."""
import sys

from xlda.evaluate.plot import main

if __name__ == "__main__":
    sys.exit(main())
