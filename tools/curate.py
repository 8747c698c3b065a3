#!/usr/bin/env python
"""Data curation on datatrove: see `python tools/curate.py --help` and README ("Curate")."""
import sys

from xlda.curate.cli import main

if __name__ == "__main__":
    sys.exit(main())
