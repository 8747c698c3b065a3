"""`xlda-preprocess` / tools/preprocess_data.py: JSONL -> per-language Megatron indexed datasets.

Flag names follow Megatron-LM's tools/preprocess_data.py where they overlap.
"""
from __future__ import annotations

import argparse
import sys

from xlda.data.lang_id import LANG_ID_METHODS
from xlda.data.tokenizer import TOKENIZER_TYPES


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="preprocess_data.py",
        description="Tokenize JSONL(.gz/.zst) documents into one Megatron indexed dataset per language: "
        "<output-prefix>_<lang>_<key>_document.{bin,idx} plus <output-prefix>.manifest.json.",
    )
    g = p.add_argument_group("input")
    g.add_argument("--input", nargs="+", required=True, help="JSONL, .jsonl.gz or .jsonl.zst files or globs")
    g.add_argument("--json-keys", nargs="+", default=["text"], help="key holding the document text")
    g.add_argument("--lang-key", default="lang", help="key holding the document language (ISO 639-1)")
    g.add_argument("--lang-id", choices=LANG_ID_METHODS, default="field",
                   help="language of documents without --lang-key: field = require the key; script = "
                   "Unicode-script heuristic (en/ko/ja/zh); lingua = lingua-language-detector")
    g.add_argument("--relabel-lang", action="store_true",
                   help="label every document by content with --lang-id, even when --lang-key is present")
    g.add_argument("--default-lang", default=None, help="language for documents that have/get none")
    g.add_argument("--languages", default=None,
                   help="comma-separated allowed languages (e.g. en,ko); others are rejected as unknown_language")
    g = p.add_argument_group("tokenizer")
    g.add_argument("--tokenizer-type", required=True, choices=TOKENIZER_TYPES)
    g.add_argument("--tokenizer-model", required=True, help="tokenizer.json (HF) or .model (SentencePiece)")
    g.add_argument("--append-eod", action="store_true", help="append the end-of-document token to each document")
    g = p.add_argument_group("output")
    g.add_argument("--output-prefix", required=True)
    g.add_argument("--workers", type=int, default=1, help="tokenizer processes")
    g.add_argument("--log-interval", type=int, default=1000, help="progress line every N documents (0: off)")
    g.add_argument("--strict", action="store_true", help="any rejected line is an error (exit 1, no outputs)")
    g.add_argument("--max-reject-examples", type=int, default=5, help="file:line examples kept per reject reason")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if len(args.json_keys) != 1:
        print(f"error: --json-keys {' '.join(args.json_keys)}: exactly one key is supported "
              "(run once per key)", file=sys.stderr)
        return 2
    languages = None
    if args.languages:
        languages = tuple(sorted({x.strip().lower() for x in args.languages.split(",") if x.strip()}))

    from xlda.data.preprocess import PreprocessConfig, PreprocessError
    from xlda.data.tokenizer import TokenizerError

    cfg = PreprocessConfig(
        input=args.input,
        output_prefix=args.output_prefix,
        tokenizer_type=args.tokenizer_type,
        tokenizer_model=args.tokenizer_model,
        json_key=args.json_keys[0],
        lang_key=args.lang_key,
        lang_id=args.lang_id,
        relabel_lang=args.relabel_lang,
        default_lang=args.default_lang,
        languages=languages,
        append_eod=args.append_eod,
        workers=args.workers,
        log_interval=args.log_interval,
        strict=args.strict,
        max_reject_examples=args.max_reject_examples,
    )
    try:
        report = cfg.build().run()
    except (PreprocessError, TokenizerError, ValueError, RuntimeError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted: partial outputs removed", file=sys.stderr)
        return 130
    print(report.format(), file=sys.stderr)
    print(f"manifest: {report.manifest_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
