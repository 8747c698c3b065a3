"""Near-duplicate detection for the held-out split: MinHash over character shingles.

A held-out page filed again under another path (a copy, a lightly edited duplicate) would leak
its text into training; an exact-text check misses it. Each page is shingled into character
n-grams of its whitespace-normalised text (language-agnostic: CJK has no word spaces), hashed to
64 bits (a polynomial over code points, numpy, seed-free), and summarised by ``K`` minimum hashes
under fixed multiply-add permutations. Locality-sensitive banding proposes candidate pairs; a pair
is a near duplicate when its estimated Jaccard similarity reaches ``threshold``. Only direct
neighbours of held-out pages are pulled out (no transitive chaining: boilerplate-heavy short
pages would otherwise chain half a corpus together).

``containment`` then measures what remains: the share of a held-out page's (longer) shingles
that occur anywhere in the training pages of its language.
"""
from __future__ import annotations

import re

import numpy as np

SHINGLE = 9  # characters, for the MinHash similarity (a few words; a CJK phrase)
CONTAIN = 25  # characters, for containment: ~5 English words, a CJK clause (shorter n-grams
# are common words, found everywhere: 5-grams put 98% of any English page "in" the training set)
NUM_HASHES = 64
BANDS = 16  # 16 bands of 4 rows: pairs at Jaccard 0.8 are proposed with p ~ 1 - (1 - 0.8^4)^16
THRESHOLD = 0.8
_P = np.uint64(1099511628211)  # FNV prime: the polynomial's base
_SHIFT = np.uint64(3)
_WS = re.compile(r"\s+")


def shingle_hashes(text: str, n: int = SHINGLE) -> np.ndarray:
    """Distinct 64-bit hashes of the character n-grams of ``text`` (whitespace collapsed);
    a text shorter than n gives its whole self as the one shingle."""
    t = _WS.sub(" ", text).strip()
    c = np.frombuffer(t.encode("utf-32-le"), dtype=np.uint32).astype(np.uint64)
    if c.size == 0:
        return np.zeros(0, np.uint64)
    n = min(n, c.size)
    h = np.zeros(c.size - n + 1, np.uint64)
    with np.errstate(over="ignore"):  # wrap-around is the hash
        for j in range(n):
            h = h * _P + c[j:c.size - n + 1 + j] + np.uint64(1)
    return np.unique(h)


def _perms(k: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(20261207)  # fixed: signatures never depend on a run's seed
    a = rng.integers(1, 1 << 61, size=k, dtype=np.uint64) | np.uint64(1)
    b = rng.integers(0, 1 << 61, size=k, dtype=np.uint64)
    return a, b


def signature(hashes: np.ndarray, k: int = NUM_HASHES) -> np.ndarray:
    """The MinHash signature: for each of ``k`` permutations, the minimum permuted hash."""
    a, b = _perms(k)
    if hashes.size == 0:
        return np.full(k, np.iinfo(np.uint64).max, np.uint64)
    out = np.empty(k, np.uint64)
    with np.errstate(over="ignore"):
        for i in range(k):  # one row at a time: long pages stay small in memory
            out[i] = ((hashes * a[i] + b[i]) >> _SHIFT).min()  # multiply-shift: high bits
    return out


def near_duplicate_pairs(held: list[str], train: list[str], threshold: float = THRESHOLD,
                         bands: int = BANDS, k: int = NUM_HASHES) -> list[tuple[int, int, float]]:
    """``(held index, train index, estimated Jaccard)`` for every held-out/training pair whose
    MinHash estimate reaches ``threshold`` (candidates from LSH banding)."""
    if k % bands:
        raise ValueError(f"near_duplicate_pairs: {k} hashes do not split into {bands} bands")
    rows = k // bands
    sig_h = [signature(shingle_hashes(t), k) for t in held]
    sig_t = [signature(shingle_hashes(t), k) for t in train]
    buckets: dict = {}
    for j, s in enumerate(sig_t):
        for band in range(bands):
            buckets.setdefault((band, s[band * rows:(band + 1) * rows].tobytes()), []).append(j)
    out = []
    for i, s in enumerate(sig_h):
        cands = set()
        for band in range(bands):
            cands.update(buckets.get((band, s[band * rows:(band + 1) * rows].tobytes()), ()))
        for j in sorted(cands):
            est = float((sig_t[j] == s).mean())
            if est >= threshold:
                out.append((i, j, est))
    return out


def containment(held: list[str], train: list[str], n: int = CONTAIN) -> np.ndarray:
    """Per held-out text, the share of its distinct n-character shingles found in any of
    ``train``."""
    pool = np.unique(np.concatenate([shingle_hashes(t, n) for t in train])) if train else \
        np.zeros(0, np.uint64)
    out = np.zeros(len(held))
    for i, t in enumerate(held):
        h = shingle_hashes(t, n)
        out[i] = np.isin(h, pool, assume_unique=True).mean() if h.size else 0.0
    return out
