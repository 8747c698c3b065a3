#!/usr/bin/env python
"""Build the byte-level BPE tokenizer.json (base language + per-language extensions).

Example:
  python tools/build_tokenizer.py --base-input ../shared/corpus/libreoffice_help.en.jsonl.gz \
      --extend-input ko=../shared/corpus/libreoffice_help.ko.jsonl.gz --base-vocab-size 8000 \
      --extend-tokens ko=2000 --heldout-fraction 0.05 --output-dir out/tok
See xlda/tokenizer_build/extend.py for how tokens are added without changing ids.
"""
import sys

from xlda.tokenizer_build.cli import main

if __name__ == "__main__":
    sys.exit(main())
