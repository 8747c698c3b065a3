#!/usr/bin/env python
"""Train a fastText quality classifier for tools/curate.py --quality-model; see --help."""
import sys

from xlda.curate.cli import train_classifier_main

if __name__ == "__main__":
    sys.exit(train_classifier_main())
