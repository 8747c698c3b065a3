#!/usr/bin/env python
"""Build the XLDA packing indices of a run ahead of the job (the trainer's flags); see
xlda/cli/build_index.py."""
import sys

from xlda.cli.build_index import main

if __name__ == "__main__":
    sys.exit(main())
