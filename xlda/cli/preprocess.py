"""`xlda-preprocess` / tools/preprocess_data.py: JSONL -> per-language Megatron indexed datasets.

Flag names (and their help) follow Megatron-LM's tools/preprocess_data.py where they overlap.
"""
from __future__ import annotations

import argparse
import sys

from xlda.cli.flags import FlagParser
from xlda.cli.run import run_tool
from xlda.data.lang_id import LANG_ID_METHODS
from xlda.data.tokenizer import TOKENIZER_TYPES


def build_parser() -> argparse.ArgumentParser:
    p = FlagParser(
        prog="preprocess_data.py",
        description="Tokenize JSONL(.gz/.zst) documents into one Megatron indexed dataset per language: "
        "<output-prefix>_<lang>_<key>_document.{bin,idx} plus <output-prefix>.manifest.json.",
    )
    g = p.add_argument_group("input data")
    g.add_argument("--input", nargs="+", required=True,
                   help="Path(s) to input JSON: .jsonl, .jsonl.gz or .jsonl.zst files or globs")
    g.add_argument("--json-keys", nargs="+", default=["text"],
                   help="space separate listed of keys to extract from json (one dataset per key and language)")
    g.add_argument("--lang-key", default="lang", help="key holding the document language (ISO 639 code)")
    g.add_argument("--lang-id", choices=LANG_ID_METHODS, default="field",
                   help="language of documents without --lang-key: field = require the key; script = "
                   "Unicode-script heuristic (en/ko/ja/zh); lingua = lingua-language-detector")
    g.add_argument("--relabel-lang", action="store_true",
                   help="label every document by content with --lang-id, even when --lang-key is present")
    g.add_argument("--default-lang", default=None, help="language for documents that have/get none")
    g.add_argument("--languages", default=None,
                   help="comma-separated allowed languages (e.g. en,ko); others are rejected as unknown_language")
    g.add_argument("--max-doc-chars", type=int, default=4_000_000,
                   help="documents longer than this many characters are rejected as document_too_long "
                   "(bounds a worker's memory); 0: no cap")
    g.add_argument("--group-key", default=None, metavar="FIELD",
                   help="store each document's group (this field's value: a page path, an "
                   "interlanguage link, a URL; documents sharing it translate or discuss each other) "
                   "beside each dataset as <dataset>.group-FIELD.npy, for the packer's "
                   "--xlda-affinity-key FIELD; a document without it is rejected as bad_group")
    g.add_argument("--group-pattern", default=None, metavar="REGEX",
                   help="with --group-key: a regex applied to the field; its first group (else the "
                   "whole match) is the group")
    g = p.add_argument_group("tokenizer")
    g.add_argument("--tokenizer-type", required=True, choices=TOKENIZER_TYPES,
                   help="What type of tokenizer to use.")
    g.add_argument("--tokenizer-model", required=True,
                   help="tokenizer.json (HuggingFaceTokenizer) or .model (SentencePieceTokenizer)")
    g.add_argument("--append-eod", action="store_true",
                   help="Append an <eod> token to the end of a document.")
    g = p.add_argument_group("output data")
    g.add_argument("--output-prefix", required=True, help="Path to binary output file without suffix")
    g.add_argument("--workers", type=int, default=1,
                   help="Number of worker processes to launch")
    g.add_argument("--log-interval", type=int, default=1000,
                   help="Interval between progress updates (documents; 0: off)")
    g.add_argument("--strict", action="store_true", help="any rejected line is an error (exit 1, no outputs)")
    g.add_argument("--max-reject-examples", type=int, default=5, help="file:line examples kept per reject reason")
    return p


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
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
        json_keys=tuple(args.json_keys),
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
        max_doc_chars=args.max_doc_chars,
        group_key=args.group_key,
        group_pattern=args.group_pattern,
    )
    rc, report = run_tool("preprocess_data", lambda pre: pre.run(),
                          (PreprocessError, TokenizerError, ValueError, RuntimeError, OSError),
                          prepare=cfg.build)
    if rc:
        return rc
    print(report.format(), file=sys.stderr)
    print(f"manifest: {report.manifest_path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
