"""Unicode script classes used to filter extension text and to report vocab per script.

Python's `re` has no `\\p{Script=...}`, so the scripts that matter for the model (en/ko/ja/zh)
are spelled out as code-point ranges.
"""
from __future__ import annotations

import re
from functools import lru_cache

SCRIPTS = ("Latin", "Hangul", "Han", "Kana", "other")

_RANGES: dict[str, tuple[tuple[int, int], ...]] = {
    "Latin": ((0x41, 0x5A), (0x61, 0x7A), (0xC0, 0xD6), (0xD8, 0xF6), (0xF8, 0x24F),
              (0x1E00, 0x1EFF)),
    "Hangul": ((0x1100, 0x11FF), (0x3130, 0x318F), (0xA960, 0xA97F), (0xAC00, 0xD7AF),
               (0xD7B0, 0xD7FF)),
    # 3005 (々) and 3007 (〇) behave as Han ideographs in running text.
    "Han": ((0x3005, 0x3005), (0x3007, 0x3007), (0x3400, 0x4DBF), (0x4E00, 0x9FFF),
            (0xF900, 0xFAFF), (0x20000, 0x2FFFF)),
    "Kana": ((0x3040, 0x309F), (0x30A0, 0x30FF), (0x31F0, 0x31FF), (0xFF66, 0xFF9F)),
}

# Which scripts an extension for a language learns from.
LANG_SCRIPTS: dict[str, tuple[str, ...]] = {
    "ko": ("Hangul",),
    "ja": ("Kana", "Han"),
    "zh": ("Han",),
    "en": ("Latin",),
}


def _class(scripts: tuple[str, ...]) -> str:
    parts = []
    for s in scripts:
        for lo, hi in _RANGES[s]:
            parts.append(re.escape(chr(lo)) if lo == hi else f"{re.escape(chr(lo))}-{re.escape(chr(hi))}")
    return "[" + "".join(parts) + "]"


def lang_scripts(lang: str) -> tuple[str, ...]:
    if lang not in LANG_SCRIPTS:
        raise ValueError(
            f"no target script known for language {lang!r}; supported: {sorted(LANG_SCRIPTS)}"
        )
    return LANG_SCRIPTS[lang]


@lru_cache(maxsize=None)
def run_pattern(lang: str) -> re.Pattern:
    """Runs of the language's script, with the single leading space the byte-level
    pre-tokenizer keeps on a word (so ` 안녕` is learned as it appears in encoding)."""
    return re.compile(" ?" + _class(lang_scripts(lang)) + "+")


def target_runs(text: str, lang: str) -> list[str]:
    return run_pattern(lang).findall(text)


@lru_cache(maxsize=65536)
def char_script(ch: str) -> str:
    cp = ord(ch)
    for name, ranges in _RANGES.items():
        for lo, hi in ranges:
            if lo <= cp <= hi:
                return name
    return "other"


# GPT-2's byte <-> printable-unicode table, as used by tokenizers' ByteLevel.
def _bytes_to_unicode() -> dict[int, str]:
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAC + 1)) + list(range(0xAE, 0xFF + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


BYTE_TO_CHAR = _bytes_to_unicode()
CHAR_TO_BYTE = {c: b for b, c in BYTE_TO_CHAR.items()}


def token_bytes(token: str) -> bytes:
    """Raw bytes of a byte-level token string (special tokens are returned as UTF-8)."""
    try:
        return bytes(CHAR_TO_BYTE[c] for c in token)
    except KeyError:
        return token.encode("utf-8")


def token_script(token: str) -> str:
    """Majority script of the letters a byte-level token decodes to; tokens without letters
    (digits, punctuation, whitespace, partial UTF-8 sequences) are `other`."""
    text = token_bytes(token).decode("utf-8", errors="ignore")
    counts: dict[str, int] = {}
    for ch in text:
        s = char_script(ch)
        if s != "other":
            counts[s] = counts.get(s, 0) + 1
    if not counts:
        return "other"
    return max(sorted(counts), key=lambda s: counts[s])


def is_partial_utf8(token: str) -> bool:
    try:
        token_bytes(token).decode("utf-8")
        return False
    except UnicodeDecodeError:
        return True
