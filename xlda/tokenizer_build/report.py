"""Measurements of a tokenizer on held-out text, and the JSON/markdown report."""
from __future__ import annotations

import time

from tokenizers import Tokenizer

from .scripts import SCRIPTS, is_partial_utf8, token_script


def vocab_by_script(tokens) -> dict[str, int]:
    out = {s: 0 for s in SCRIPTS}
    for t in tokens:
        out[token_script(t)] += 1
    return out


def evaluate(tok: Tokenizer, texts_by_lang: dict[str, list[str]]) -> dict[str, dict]:
    """Per language: documents, characters, tokens, chars/token, tokens/document."""
    out = {}
    for lang, texts in texts_by_lang.items():
        encs = tok.encode_batch(texts, add_special_tokens=False)
        n_tok = sum(len(e.ids) for e in encs)
        n_chr = sum(len(t) for t in texts)
        out[lang] = {
            "docs": len(texts), "chars": n_chr, "tokens": n_tok,
            "chars_per_token": round(n_chr / n_tok, 4) if n_tok else None,
            "tokens_per_doc": round(n_tok / len(texts), 2) if texts else None,
        }
    return out


def encode_speed(tok: Tokenizer, texts: list[str], repeats: int = 3) -> float:
    """Tokens/second of `encode_batch` (best of `repeats`, tokenizers' default threading)."""
    best = 0.0
    for _ in range(repeats if texts else 0):
        t0 = time.perf_counter()
        n = sum(len(e.ids) for e in tok.encode_batch(texts, add_special_tokens=False))
        dt = time.perf_counter() - t0
        best = max(best, n / dt if dt > 0 else 0.0)
    return round(best, 1)


def added_summary(added: dict[str, list[str]]) -> dict[str, dict]:
    return {
        lang: {"tokens": len(toks), "by_script": vocab_by_script(toks),
               "partial_utf8": sum(map(is_partial_utf8, toks))}
        for lang, toks in added.items()
    }


def markdown(rep: dict) -> str:
    lines = ["# Tokenizer build report", "",
             f"- vocab size: {rep['vocab_size']} (base {rep['base_vocab_size']}, added "
             + ", ".join(f"{k}={v['tokens']}" for k, v in rep["added"].items()) + ")",
             f"- special tokens: " + ", ".join(f"`{k}`={v}" for k, v in rep["special_tokens"].items())
             + f" (EOD = `{rep['eod_token']}`)",
             f"- tokenizer.json sha256: `{rep['sha256']}`", "",
             "## Vocabulary per script", "", "| | " + " | ".join(rep["vocab_by_script"]) + " |",
             "|---" * (len(rep["vocab_by_script"]) + 1) + "|",
             "| all | " + " | ".join(str(v) for v in rep["vocab_by_script"].values()) + " |"]
    for lang, a in rep["added"].items():
        lines.append(f"| added {lang} | " + " | ".join(str(v) for v in a["by_script"].values())
                     + f" |  ({a['partial_utf8']} partial UTF-8)")
    lines += ["", "## Held-out text", "",
              "| lang | docs | chars | chars/token base | chars/token extended | tokens/doc base | tokens/doc extended |",
              "|---|---|---|---|---|---|---|"]
    for lang, after in rep["heldout"]["extended"].items():
        b = rep["heldout"]["base"][lang]
        lines.append(f"| {lang} | {after['docs']} | {after['chars']} | {b['chars_per_token']} | "
                     f"{after['chars_per_token']} | {b['tokens_per_doc']} | {after['tokens_per_doc']} |")
    s = rep["encode_tokens_per_s"]
    lines += ["", f"Encode speed (encode_batch, all held-out text): base {s['base']:.0f} tokens/s, "
              f"extended {s['extended']:.0f} tokens/s.", ""]
    return "\n".join(lines)
