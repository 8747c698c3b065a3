"""What a packing index does to documents, measured (tests and benchmarks/bench_index.py).

Works on the flat stream layout (piece starts, lengths, offsets: vectorised from the index and
the documents' lengths) and compares with Megatron's plain contiguous packing of the same
documents (concatenate, cut every S tokens).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np

from xlda.data.packing import PackedIndex


def stream_layout(index: PackedIndex, doc_lengths: Sequence[np.ndarray]) -> dict:
    """Flat arrays over the pieces in stream order: start (global token position, one extra
    entry = stream end), length, offset in the document, lang, doc, and `first` (the piece
    opens a document occurrence: offset 0)."""
    lang = np.asarray(index.piece_lang, dtype=np.int64)
    doc = np.asarray(index.piece_doc, dtype=np.int64)
    length = np.zeros(lang.shape[0], dtype=np.int64)
    for l, lens in enumerate(doc_lengths):
        sel = lang == l
        length[sel] = np.asarray(lens, dtype=np.int64)[doc[sel]]
    offset = np.zeros_like(length)
    cp = np.asarray(index.cut_piece, dtype=np.int64)
    offset[cp] = np.asarray(index.cut_off)
    length[cp] = np.asarray(index.cut_len)
    start = np.concatenate([[0], np.cumsum(length)])
    return {"start": start, "length": length, "offset": offset, "lang": lang, "doc": doc,
            "first": offset == 0}


def switch_rate(layout: dict) -> float:
    """Share of document boundaries (a piece ending its document) where the language changes."""
    ends = _ends_document(layout)[:-1]
    change = layout["lang"][1:] != layout["lang"][:-1]
    return float(change[ends].mean()) if ends.any() else 0.0


def _ends_document(layout: dict) -> np.ndarray:
    """Per piece: the next piece starts a new document occurrence (it is not a cut)."""
    nxt_first = np.append(layout["first"][1:], True)
    return nxt_first


def token_shares(layout: dict, n_lang: int, n_tokens: int) -> np.ndarray:
    """Per-language token shares over the first n_tokens of the stream."""
    s, e = layout["start"][:-1], np.minimum(layout["start"][1:], n_tokens)
    w = np.bincount(layout["lang"], weights=np.maximum(e - s, 0), minlength=n_lang)
    return w / w.sum()


def doc_context(layout: dict, seq_length: int, n_samples: int, langs) -> dict:
    """For the tokens of `langs` in the first n_samples windows: share whose document
    occurrence starts in the same sample, and pieces per document occurrence (a document cut
    by the index or by a sample boundary counts each part)."""
    S = seq_length
    start, length = layout["start"][:-1], layout["length"]
    occ = np.cumsum(layout["first"]) - 1  # document occurrence of each piece
    occ_start = start[layout["first"]][occ]  # where that occurrence's first piece starts
    return _context(start, length, occ, occ_start, layout["lang"], S, n_samples, langs)


def plain_context(doc_lengths: Sequence[np.ndarray], seq_length: int, n_samples: int, langs,
                  seed: int = 0) -> dict:
    """The same figures for Megatron's plain packing of the same documents (every language's,
    in one seeded random order, concatenated and cut every seq_length tokens)."""
    doc_lang = np.concatenate([np.full(len(x), l) for l, x in enumerate(doc_lengths)])
    doc_len = np.concatenate([np.asarray(x, dtype=np.int64) for x in doc_lengths])
    order = np.random.default_rng(seed).permutation(doc_len.shape[0])
    doc_lang, doc_len = doc_lang[order], doc_len[order]
    start = np.concatenate([[0], np.cumsum(doc_len)])[:-1]
    occ = np.arange(doc_len.shape[0])
    return _context(start, doc_len, occ, start, doc_lang, seq_length, n_samples, langs)


def _context(start, length, occ, occ_start, lang, S, n_samples, langs) -> dict:
    end = np.minimum(start + length, n_samples * S)
    keep = (start < n_samples * S) & np.isin(lang, list(langs))
    start, end, occ, occ_start = start[keep], end[keep], occ[keep], occ_start[keep]
    # tokens of [start, end) in the sample of occ_start: [max(start, w0), min(end, w0 + S))
    w0 = (occ_start // S) * S
    same = np.maximum(np.minimum(end, w0 + S) - np.maximum(start, w0), 0)
    tokens = int((end - start).sum())
    # pieces as a sample sees them: each piece split at sample boundaries
    parts = (end - 1) // S - start // S + 1
    n_occ = np.unique(occ).shape[0]
    return {"tokens": tokens, "start_in_sample": float(same.sum() / max(tokens, 1)),
            "pieces_per_doc": float(parts.sum() / max(n_occ, 1))}
