"""Command line of tools/build_tokenizer.py."""
from __future__ import annotations

import argparse

from xlda.cli.flags import FlagParser, say_error

from .build import TokenizerBuildConfig


def _lang_value(s: str, flag: str) -> tuple[str, str]:
    lang, sep, val = s.partition("=")
    if not sep or not lang or not val:
        raise argparse.ArgumentTypeError(f"{flag} expects LANG=VALUE (e.g. ko=...), got {s!r}")
    return lang, val


def _int_list(s: str) -> list[int]:
    try:
        return [int(x) for x in s.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {s!r}") from None


def parser() -> argparse.ArgumentParser:
    p = FlagParser(
        prog="build_tokenizer.py",
        description="Build a byte-level BPE tokenizer: base on one language, extended with "
        "tokens of others (existing ids unchanged). Special tokens: <|endoftext|> (EOD, id 0), "
        "<|pad|> (1), <|bos|> (2), <|im_start|> (3), <|im_end|> (4): the chat template's turn "
        "markers, so an SFT model's end of turn is one token generation stops at.")
    p.add_argument("--base-input", nargs="+", required=True, help="JSONL(.gz) files of the base language")
    p.add_argument("--base-lang", default="en", help="language code of --base-input (the reports' label)")
    p.add_argument("--base-vocab-size", type=int, required=True, help="total base vocab incl. specials and 256 bytes")
    p.add_argument("--extend-input", action="append", default=[], metavar="LANG=PATH",
                   help="JSONL(.gz) of a language to extend with (repeat per language or file)")
    p.add_argument("--extend-tokens", action="append", default=[], metavar="LANG=N",
                   help="exact number of tokens to add for LANG (applied in the order given)")
    p.add_argument("--eval-input", action="append", default=[], metavar="LANG=PATH",
                   help="extra files whose held-out part is only measured")
    p.add_argument("--heldout-fraction", type=float, default=0.05,
                   help="share of each file's documents kept out of training, for chars/token")
    p.add_argument("--min-frequency", type=int, default=2, help="BPE: least count of a merged pair")
    p.add_argument("--seed", type=int, default=1234, help="held-out split and sampling seed")
    p.add_argument("--max-docs", type=int, default=None, help="read at most this many docs per file")
    p.add_argument("--output-dir", required=True,
                   help="writes tokenizer.json, report.json and report.md here")
    p.add_argument("--sweep-ko-tokens", type=_int_list, default=None, metavar="N1,N2,...",
                   help="also write sweep.{csv,md,png}: chars/token per language vs tokens added for --sweep-lang")
    p.add_argument("--sweep-lang", default="ko", help="the language --sweep-ko-tokens extends")
    p.add_argument("--speed-repeats", type=int, default=3, help="encode-speed timing runs; 0 skips timing")
    return p


def config_from_args(argv: list[str] | None = None) -> TokenizerBuildConfig:
    p = parser()
    a = p.parse_args(argv)
    try:
        ext_in = [_lang_value(s, "--extend-input") for s in a.extend_input]
        ev_in = [_lang_value(s, "--eval-input") for s in a.eval_input]
        sizes: dict[str, int] = {}
        for s in a.extend_tokens:
            lang, v = _lang_value(s, "--extend-tokens")
            if lang in sizes:
                raise argparse.ArgumentTypeError(f"--extend-tokens {lang} given twice")
            try:
                sizes[lang] = int(v)
            except ValueError:
                raise argparse.ArgumentTypeError(f"--extend-tokens {s!r}: N must be an integer") from None
    except argparse.ArgumentTypeError as e:
        p.error(str(e))
    if a.speed_repeats < 0:
        p.error(f"--speed-repeats must be >= 0, got {a.speed_repeats}")
    if a.max_docs is not None and a.max_docs < 1:
        p.error(f"--max-docs must be >= 1, got {a.max_docs}")
    return TokenizerBuildConfig(
        base_inputs=a.base_input, base_vocab_size=a.base_vocab_size, output_dir=a.output_dir,
        extend_inputs=ext_in, extend_tokens=sizes, eval_inputs=ev_in, base_lang=a.base_lang,
        heldout_fraction=a.heldout_fraction, min_frequency=a.min_frequency, seed=a.seed,
        max_docs=a.max_docs, sweep_lang=a.sweep_lang, sweep_tokens=a.sweep_ko_tokens,
        speed_repeats=a.speed_repeats)


def main(argv: list[str] | None = None) -> int:
    cfg = config_from_args(argv)
    try:
        cfg.build()
    except (ValueError, FileNotFoundError) as e:
        say_error("build_tokenizer", e)
        return 2
    return 0
