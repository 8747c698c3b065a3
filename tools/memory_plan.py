#!/usr/bin/env python
"""Per-GPU memory plan of a layout, e.g.
  python tools/memory_plan.py --config examples/trillion7b/trillion_7b.yaml \
      --tensor-model-parallel-size 2 --pipeline-model-parallel-size 2 --num-nodes 32 --gpus-per-node 8
See xlda/training/memory_plan.py for the formulas, xlda/cli/memory_plan.py for the flags."""
import sys

from xlda.cli.memory_plan import main

if __name__ == "__main__":
    sys.exit(main())
