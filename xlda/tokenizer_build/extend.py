"""Extend a trained byte-level BPE with tokens of one language, keeping every existing id.

Choice of method (why not "train a second BPE and copy its merges"): the extension BPE is
*continued* from the base tokenizer instead of trained from bytes. The extension text is first
reduced to runs of the language's script (Hangul for ko, Kana+Han for ja, Han for zh; each run
with the one leading space the byte-level pre-tokenizer keeps), because the ko/ja/zh corpora
carry much English UI text that must not buy Korean vocabulary. Each distinct run is segmented by
the *base* tokenizer, and BPE merges are then learned on top of that segmentation. Appended after
the base merges, the learned merges therefore fire at encode time exactly as they did in
training (every base merge has a higher priority, and the base segmentation is where training
started), so no added token is unreachable because a base merge got there first, and all parts
of every merge are already in the vocabulary (no missing intermediates to patch in).

Every learned merge adds exactly one token (a merge whose result is already in the vocabulary
is banned, not counted), so "N tokens requested" = the first N merges, and a smaller request is
a prefix of a larger one (the sweep trains once). Tokens that are partial UTF-8 (e.g. two of a
Hangul syllable's three bytes) count: they are the intermediate steps BPE needs to build
syllables the base did not have. A merge must occur at least `min_frequency` times; when the
text runs out of such merges before N, a ValueError names the language, what the text
supports, and what to do.
"""
from __future__ import annotations

import heapq
import sys
from collections import Counter
from dataclasses import dataclass

from .scripts import lang_scripts, target_runs


@dataclass
class Extension:
    lang: str
    merges: list[tuple[str, str]]  # in learned order; merge i creates token merges[i][0]+merges[i][1]
    exhausted: bool  # True when no merge with count >= min_frequency was left
    runs: int  # distinct target-script runs trained on
    chars: int  # target-script characters trained on (with multiplicity)
    docs: int

    def tokens(self, n: int | None = None) -> list[str]:
        return [a + b for a, b in self.merges[:n]]


def _words(base_tokenizer, texts: list[str], lang: str) -> tuple[list[list[str]], list[int], int, int]:
    runs: Counter[str] = Counter()
    for t in texts:
        runs.update(target_runs(t, lang))
    keys = sorted(runs)
    words: list[list[str]] = []
    counts: list[int] = []
    # Group base tokens by pre-token: merges never cross pre-token boundaries at encode time.
    for key, enc in zip(keys, base_tokenizer.encode_batch(keys, add_special_tokens=False)):
        groups: dict[int, list[str]] = {}
        for tok, w in zip(enc.tokens, enc.word_ids):
            groups.setdefault(w, []).append(tok)
        for g in groups.values():
            if len(g) > 1:
                words.append(g)
                counts.append(runs[key])
    chars = sum(len(k.strip()) * c for k, c in runs.items())
    return words, counts, len(keys), chars


def _occurrences(w: list[str], a: str, b: str) -> list[int]:
    """Left-to-right non-overlapping positions of the pair (a, b) in w (list.index scans in C)."""
    occ, j, n = [], 0, len(w) - 1
    while j < n:
        try:
            j = w.index(a, j, n)
        except ValueError:
            break
        if w[j + 1] == b:
            occ.append(j)
            j += 2
        else:
            j += 1
    return occ


def _apply(w: list[str], occ: list[int], new: str) -> list[str]:
    out, prev = [], 0
    for j in occ:
        out.extend(w[prev:j])
        out.append(new)
        prev = j + 2
    out.extend(w[prev:])
    return out


def learn_extension(
    base_tokenizer,
    vocab: set[str],
    texts: list[str],
    lang: str,
    n_tokens: int,
    min_frequency: int = 2,
    progress: bool = True,
) -> Extension:
    """Learn up to `n_tokens` merges for `lang` on top of `base_tokenizer` (whose vocab, plus
    any earlier extensions, is `vocab`). Returns fewer merges only with `exhausted=True`."""
    lang_scripts(lang)  # clear error for unknown languages
    words, counts, n_runs, n_chars = _words(base_tokenizer, texts, lang)
    pair_count: dict[tuple[str, str], int] = {}
    where: dict[tuple[str, str], set[int]] = {}
    for i, (w, c) in enumerate(zip(words, counts)):
        for p in zip(w, w[1:]):
            pair_count[p] = pair_count.get(p, 0) + c
            where.setdefault(p, set()).add(i)
    # Max-heap by count, ties by the pair's strings: deterministic regardless of dict order.
    heap = [(-c, p) for p, c in pair_count.items()]
    heapq.heapify(heap)
    merges: list[tuple[str, str]] = []
    known = set(vocab)
    banned: set[tuple[str, str]] = set()
    exhausted = False
    step = max(1, n_tokens // 10)
    while len(merges) < n_tokens:
        if not heap:
            exhausted = True
            break
        negc, pair = heapq.heappop(heap)
        c = -negc
        if pair_count.get(pair, 0) != c or pair in banned:
            continue  # stale entry
        if c < min_frequency:
            exhausted = True
            break
        new = pair[0] + pair[1]
        if new in known:
            banned.add(pair)
            continue
        known.add(new)
        merges.append(pair)
        changed: set[tuple[str, str]] = set()
        a, b = pair
        for i in sorted(where.pop(pair, ())):
            w = words[i]
            occ = _occurrences(w, a, b)
            if not occ:
                continue  # stale index entry
            out = _apply(w, occ, new)
            wc = counts[i]
            # Only pairs touching a merged occurrence change; sets dedupe adjacent occurrences.
            for j in {k for o in occ for k in (o - 1, o, o + 1) if 0 <= k < len(w) - 1}:
                p = (w[j], w[j + 1])
                pair_count[p] -= wc
                changed.add(p)
            for j in {k for o in range(len(occ)) for k in (occ[o] - o - 1, occ[o] - o)
                      if 0 <= k < len(out) - 1}:
                p = (out[j], out[j + 1])
                pair_count[p] = pair_count.get(p, 0) + wc
                where.setdefault(p, set()).add(i)
                changed.add(p)
            words[i] = out
        pair_count.pop(pair, None)
        for p in changed:
            c2 = pair_count.get(p, 0)
            if c2 > 0 and p != pair:
                heapq.heappush(heap, (-c2, p))
        if progress and len(merges) % step == 0:
            print(f"[build_tokenizer] extend {lang}: {len(merges)}/{n_tokens} tokens", file=sys.stderr)
    return Extension(lang, merges, exhausted, n_runs, n_chars, len(texts))


def require(ext: Extension, n_tokens: int, min_frequency: int) -> None:
    """Raise the user-facing error when `ext` could not honour a request of `n_tokens`."""
    if len(ext.merges) >= n_tokens:
        return
    raise ValueError(
        f"extension {ext.lang}: requested {n_tokens} new tokens, but the {ext.lang} training text "
        f"({ext.docs} documents, {ext.chars} characters of {'+'.join(lang_scripts(ext.lang))} in "
        f"{ext.runs} distinct runs) supports only {len(ext.merges)} merges occurring >= "
        f"{min_frequency} times. Give more {ext.lang} text (--extend-input {ext.lang}=...), request at "
        f"most {len(ext.merges)} (--extend-tokens {ext.lang}={len(ext.merges)}), or lower --min-frequency."
    )
