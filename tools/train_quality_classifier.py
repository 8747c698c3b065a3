#!/usr/bin/env python
"""Train a fastText quality classifier from positive and negative JSONL for tools/curate.py
--quality-model. Example:

    python tools/train_quality_classifier.py --positive good.jsonl.gz --negative web.jsonl.gz \
        --output out/quality.bin
"""
import argparse
import json
import sys

from xlda.curate.classifier import ClassifierConfig
from xlda.curate.config import CurateError


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="train_quality_classifier.py", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--positive", nargs="+", required=True, help="JSONL(.gz/.zst) of high-quality documents")
    p.add_argument("--negative", nargs="+", required=True, help="JSONL(.gz/.zst) of low-quality documents")
    p.add_argument("--output", required=True, help="model file (.bin)")
    p.add_argument("--text-key", default="text")
    p.add_argument("--label", default="__label__hq", help="positive label (curate.py --quality-label)")
    p.add_argument("--epoch", type=int, default=5)
    p.add_argument("--lr", type=float, default=0.5)
    p.add_argument("--word-ngrams", type=int, default=2)
    p.add_argument("--dim", type=int, default=64)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--valid-fraction", type=float, default=0.1)
    a = p.parse_args(argv)
    try:
        r = ClassifierConfig(positive=a.positive, negative=a.negative, output=a.output,
                             text_key=a.text_key, label=a.label, epoch=a.epoch, lr=a.lr,
                             word_ngrams=a.word_ngrams, dim=a.dim, seed=a.seed,
                             valid_fraction=a.valid_fraction).build().run()
    except CurateError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    print(json.dumps(r))
    return 0


if __name__ == "__main__":
    sys.exit(main())
