#!/usr/bin/env python
"""Megatron-style preprocessing, language-aware: see `python tools/preprocess_data.py --help`."""
import sys

from xlda.cli.preprocess import main

if __name__ == "__main__":
    sys.exit(main())
