"""Exact top-k selection across tasks without a global sort in memory.

Every document gets a unique sortable key: (its score mapped to an order-preserving uint64, a
64-bit hash of its id and text as tie-breaker), so "the top fraction f" is exactly k =
round(f * N) documents even when many share a score. Each task writes its keys sorted
(<keys>/<tag>.npy, an (n, 2) uint64 array). The k-th largest key of the union is then found by
binary search over the 128-bit key space, counting keys >= t in every file with searchsorted:
128 probes x files x O(log n), memory O(1) per file (the arrays are memory-mapped).
"""
from __future__ import annotations

import hashlib
import io
import os
import struct
from fractions import Fraction

import numpy as np

from xlda.files import atomic_write

_SIGN = 1 << 63


def score_bits(score: float) -> int:
    """float64 -> uint64 with the same order (negative floats flipped, positives offset);
    -0.0 counts as 0.0, as it compares equal to it."""
    (b,) = struct.unpack("<Q", struct.pack("<d", float(score) + 0.0))
    return (~b) & 0xFFFFFFFFFFFFFFFF if b & _SIGN else b | _SIGN


def bits_score(bits: int) -> float:
    b = bits & ~_SIGN if bits & _SIGN else (~bits) & 0xFFFFFFFFFFFFFFFF
    return struct.unpack("<d", struct.pack("<Q", b))[0]


def doc_key(score: float, doc_id: str, text: str) -> tuple[int, int]:
    tie = hashlib.blake2b(f"{doc_id}\0{text}".encode("utf-8", "surrogatepass"), digest_size=8)
    return score_bits(score), int.from_bytes(tie.digest(), "little")


def write_keys(keys: list[tuple[int, int]], path: str | os.PathLike) -> None:
    arr = np.array(keys, dtype=np.uint64).reshape(-1, 2)
    if len(arr):
        arr = arr[np.lexsort((arr[:, 1], arr[:, 0]))]
    buf = io.BytesIO()
    np.save(buf, arr)
    atomic_write(path, buf.getvalue())


def top_k_count(n: int, fraction: Fraction) -> int:
    """k = round(fraction * n), halves rounded up; exact rational arithmetic."""
    return int(Fraction(fraction) * n + Fraction(1, 2))


class KeyFiles:
    """The sorted key files of one language, memory-mapped."""

    def __init__(self, files):
        self.arrays = [np.load(f, mmap_mode="r") for f in sorted(files)]
        self.arrays = [a for a in self.arrays if len(a)]
        self.total = sum(len(a) for a in self.arrays)

    def count_ge(self, key: int) -> int:
        hi, lo = np.uint64(key >> 64), np.uint64(key & 0xFFFFFFFFFFFFFFFF)
        n = 0
        for a in self.arrays:
            col = a[:, 0]
            left = int(np.searchsorted(col, hi, "left"))
            right = int(np.searchsorted(col, hi, "right"))
            inner = int(np.searchsorted(a[left:right, 1], lo, "left"))
            n += len(a) - (left + inner)
        return n

    def kth_largest(self, k: int) -> int | None:
        """The k-th largest key as a 128-bit int (None when k == 0); 1 <= k <= total."""
        if k <= 0:
            return None
        if k > self.total:
            raise ValueError(f"k={k} > {self.total} keys")
        lo, hi = 0, (1 << 128) - 1
        while lo < hi:  # largest t with count_ge(t) >= k: that t is a key, the k-th largest
            mid = (lo + hi + 1) // 2
            if self.count_ge(mid) >= k:
                lo = mid
            else:
                hi = mid - 1
        return lo
