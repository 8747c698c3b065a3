"""The built-in quality score (`tools/curate.py --heuristic-score`): a route to `--anneal-top` for a
corpus that has neither a score field nor positive/negative sets to train a classifier on.

It ranks prose above boilerplate with four text statistics in [0, 1], averaged with equal weight:

- terminal: the share of the text's characters (non-empty lines, stripped) on lines that end in
  sentence punctuation (. ! ? and the CJK full-width forms, also before a closing quote or
  bracket) -- menus, tables and navigation do not; weighted by characters because a help page's
  many short labels sit beside long sentences;
- unique_lines: distinct non-empty lines over non-empty lines -- repeated headers and templates;
- alpha_words: of the words (xlda.curate.words, one per CJK character) that are not punctuation,
  those holding a letter -- digits, symbols and markup rank low, sentence punctuation does not;
- length: log(1 + words) / log(1 + 500), capped at 1 -- stubs rank low, 500 words count as full.

It is a stand-in, not a learned judgement: the FineWeb-Edu style classifier (a score field) or
one trained on the user's own sets (`--quality-model`) should replace it where they exist.
Deterministic: the same text always gets the same score (rounded to 6 digits).
"""
from __future__ import annotations

import math
import unicodedata

from xlda.curate.words import ScriptWordTokenizer

_TOK = ScriptWordTokenizer()
TERMINAL = set(".!?。！？…")
CLOSERS = set("\"'”’)」』）]")
FULL_LENGTH_WORDS = 500


def components(text: str) -> dict[str, float]:
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    words = _TOK.word_tokenize(text)
    if not lines or not words:
        return {"terminal": 0.0, "unique_lines": 0.0, "alpha_words": 0.0, "length": 0.0}
    ends = sum(len(ln) for ln in lines if ln.rstrip("".join(CLOSERS))[-1:] in TERMINAL)
    content = [w for w in words if not all(unicodedata.category(ch)[0] == "P" for ch in w)]
    return {
        "terminal": ends / sum(map(len, lines)),
        "unique_lines": len(set(lines)) / len(lines),
        "alpha_words": (sum(any(ch.isalpha() for ch in w) for w in content) / len(content)
                        if content else 0.0),
        "length": min(1.0, math.log1p(len(words)) / math.log1p(FULL_LENGTH_WORDS)),
    }


def heuristic_score(text: str) -> float:
    c = components(text)
    return round(sum(c.values()) / len(c), 6)
