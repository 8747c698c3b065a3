"""Cost of the THD decomposition of a packed sample: K/V expansion and attention FLOPs ratio.

Under XLDA each query document j attends [earlier tokens of other languages] ++ [itself], so TE's
varlen kernel reads sum_j (prefix_j + n_j) K/V rows instead of S. The packer/collator can compute
this from document lengths and languages alone (no token tensors) and refuse or flag samples over
a cap; the trainer logs it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np


@dataclass(frozen=True)
class ExpansionStats:
    kv_expansion: float  # gathered K/V rows / S (1.0 = document attention)
    flops_ratio: float  # visible (q, k) pairs / causal pairs S(S+1)/2
    max_kv_len: int  # longest kv set (max_seqlen_kv of the varlen call)
    num_docs: int


def expansion_from_lengths(doc_lens: Sequence[int], doc_langs: Sequence[int], mode: str = "xlda") -> ExpansionStats:
    """Stats of one sequence made of documents (in order) with these lengths and languages."""
    n = np.asarray(doc_lens, dtype=np.int64)
    langs = np.asarray(doc_langs)
    if n.ndim != 1 or langs.shape != n.shape or n.size == 0 or (n <= 0).any():
        raise ValueError("doc_lens must be positive ints and doc_langs of the same length (>= 1 doc)")
    S = int(n.sum())
    before = np.concatenate([[0], np.cumsum(n)[:-1]])  # tokens before doc j
    if mode == "xlda":
        same = np.zeros_like(n)  # tokens before doc j in doc j's language
        for lang in np.unique(langs):
            sel = langs == lang
            c = np.cumsum(np.where(sel, n, 0))
            same[sel] = (c - n)[sel]
        prefix = before - same
    elif mode == "document":
        prefix = np.zeros_like(n)
    elif mode == "causal":
        prefix = before
    else:
        raise ValueError(f"unknown attention mask mode {mode!r}")
    kv = prefix + n
    pairs = int((n * prefix + n * (n + 1) // 2).sum())
    return ExpansionStats(
        kv_expansion=float(kv.sum()) / S if mode != "causal" else 1.0,
        flops_ratio=pairs / (S * (S + 1) // 2),
        max_kv_len=int(kv.max()) if mode != "causal" else S,
        num_docs=int(n.size),
    )


def expansion_from_ids(doc_ids, lang_ids, mode: str = "xlda") -> list[ExpansionStats]:
    """Per-row stats from [B, S] (or [S]) doc/lang id arrays (torch or numpy)."""
    d = np.asarray(doc_ids)
    g = np.asarray(lang_ids)
    if d.ndim == 1:
        d, g = d[None], g[None]
    out = []
    for row_d, row_g in zip(d, g):
        starts = np.flatnonzero(np.r_[True, row_d[1:] != row_d[:-1]])
        lens = np.diff(np.r_[starts, row_d.size])
        out.append(expansion_from_lengths(lens, row_g[starts], mode))
    return out


def kv_rows_per_row(doc_ids, lang_ids, mode: str = "xlda") -> np.ndarray:
    """Exact gathered K/V rows of the THD layout (``build_thd_layout(...).kv_index`` length) per
    row of [B, S] id arrays, without building the layout; documents resumed later in a row count
    their earlier pieces, as the layout does. Divide by S for the row's K/V expansion."""
    d = np.asarray(doc_ids)
    g = np.asarray(lang_ids)
    if d.ndim == 1:
        d, g = d[None], g[None]
    B, S = d.shape
    if mode == "causal":
        return np.full(B, S, dtype=np.int64)
    if mode not in ("xlda", "document"):
        raise ValueError(f"unknown attention mask mode {mode!r}")
    out = np.empty(B, dtype=np.int64)
    for b in range(B):
        starts = np.flatnonzero(np.r_[True, d[b, 1:] != d[b, :-1]])
        n = np.diff(np.r_[starts, S])

        def before_same(keys):
            # tokens before each segment start that share the segment's key
            _, inv = np.unique(keys, return_inverse=True)
            onehot_cum = np.zeros((S + 1, inv.max() + 1), dtype=np.int64)
            np.add.at(onehot_cum, (np.arange(1, S + 1), inv), 1)
            onehot_cum = onehot_cum.cumsum(0)
            return onehot_cum[starts, inv[starts]]

        same_doc = before_same(d[b])
        if mode == "document":
            prefix = same_doc
        else:
            # earlier tokens of other languages, plus earlier pieces of the same document
            prefix = starts - before_same(g[b]) + same_doc
        out[b] = int((prefix + n).sum())
    return out


class ExpansionCapExceeded(ValueError):
    pass


@dataclass
class ExpansionCap:
    """Refuse (raise) or flag samples whose K/V expansion exceeds ``max_kv_expansion``."""

    max_kv_expansion: float = 4.0
    action: str = "raise"  # "raise" | "flag"

    def check(self, doc_lens, doc_langs, mode: str = "xlda", where: str = "") -> tuple[bool, ExpansionStats]:
        if self.action not in ("raise", "flag"):
            raise ValueError(f"ExpansionCap.action must be 'raise' or 'flag', got {self.action!r}")
        st = expansion_from_lengths(doc_lens, doc_langs, mode)
        ok = st.kv_expansion <= self.max_kv_expansion
        if not ok and self.action == "raise":
            raise ExpansionCapExceeded(
                f"sample {where}: XLDA K/V expansion {st.kv_expansion:.2f} exceeds the cap "
                f"{self.max_kv_expansion} ({st.num_docs} documents); pack fewer, longer documents "
                "per sequence or raise max_kv_expansion"
            )
        return ok, st
