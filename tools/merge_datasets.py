#!/usr/bin/env python
"""Merge per-shard preprocess outputs language by language: see `python tools/merge_datasets.py --help`."""
import sys

from xlda.cli.merge_datasets import main

if __name__ == "__main__":
    sys.exit(main())
