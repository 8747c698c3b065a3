"""The in-context transfer probe: does a model use an English translation placed before a Korean
(Japanese, Chinese) document to predict it?

For each held-out target document that has a held-out source-language translation (same alignment
group), three sequences score the SAME target tokens at the SAME positions:

- ``translation``: [its source translation | target]
- ``unrelated``:   [an unrelated source document cut to the translation's exact length | target]
- ``none``:        [target] alone (positions 0.., so shifted; RoPE scores depend only on
  relative positions, so this equals the others under a document mask up to rounding)

``unrelated - translation`` is the in-context transfer. The two contexts have equal lengths and
both end in EOD, so the target's positions, and everything the target can see under the
document mask (only itself), are identical: there the transfer is exactly 0 by construction. Under
``xlda`` (the context is another language) and ``causal`` the target sees the context.

Scored: the target's next-token predictions made AT target positions (target token i predicts
i+1). The prediction of the target's first token is made at the context's EOD, which belongs to
the context document, so it is not scored (it would differ between contexts under any mask).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import torch

CONDITIONS = ("translation", "unrelated", "none")


@dataclass
class ProbeItem:
    lang: str  # target language
    group: str  # the target's (and translation's) alignment key
    target: np.ndarray  # the target tokens placed in the sequence (its first T tokens)
    translation: np.ndarray  # context (a): the translation's first C-1 tokens + EOD
    unrelated: np.ndarray  # context (b): another source document, same length, + EOD
    unrelated_group: str


def _tie(a: str, b: str) -> str:
    return hashlib.sha1(f"{a}\0{b}".encode()).hexdigest()


def _context(doc: np.ndarray, n: int, eod: int) -> np.ndarray:
    """``doc``'s first n-1 tokens + EOD (the form a document boundary has in training)."""
    return np.concatenate([np.asarray(doc[:n - 1], dtype=np.int64), [eod]])


def build_probe(docs: dict, groups: dict, seq_length: int, eod: int, source: str = "en",
                context_len: int | None = None, min_target: int = 8) -> dict:
    """Probe items per target language: ``{lang: [ProbeItem, ...]}`` in the order of
    ``docs[lang]``.

    ``docs[lang][i]`` is held-out document i's token array (ending in EOD); ``groups[lang][i]``
    its alignment key. The context budget is ``context_len`` tokens (default half the
    sequence), the target gets the rest. A target without a translation, or for which no
    unrelated source document is at least as long as the context, is skipped.
    """
    if source not in docs:
        raise ValueError(f"probe source language {source!r} not among {list(docs)}")
    C = context_len if context_len is not None else seq_length // 2
    T = seq_length - C
    if C < 2 or T < min_target:
        raise ValueError(f"probe: context {C} and target {T} tokens do not fit sequence "
                         f"length {seq_length} (need context >= 2, target >= {min_target}); "
                         f"change --probe-context or --seq-length")
    src = {g: np.asarray(d) for g, d in zip(groups[source], docs[source]) if g is not None}
    pool = sorted(src.items(), key=lambda kv: kv[0])
    out = {}
    for lang in docs:
        if lang == source:
            continue
        items = []
        for doc, g in zip(docs[lang], groups[lang]):
            doc = np.asarray(doc)
            if g is None or g not in src or len(doc) < min_target:
                continue
            translation = _context(src[g], min(len(src[g]), C), eod)
            n = len(translation)
            cands = [(abs(len(u) - len(src[g])), _tie(g, ug), ug, u) for ug, u in pool
                     if ug != g and len(u) >= n]
            if not cands:
                continue
            _, _, ug, u = min(cands, key=lambda c: c[:2])
            items.append(ProbeItem(lang, g, np.asarray(doc[:T], dtype=np.int64), translation,
                                   _context(u, n, eod), ug))
        out[lang] = items
    return out


def probe_sequence(item: ProbeItem, condition: str, seq_length: int, eod: int) -> dict:
    """One probe sample (unbatched tensors): tokens, labels, loss_mask, position_ids, doc_ids,
    lang_ids (context 0, target 1: the masks only compare ids). Padding after the target is its
    own document and never scored."""
    ctx = {"translation": item.translation, "unrelated": item.unrelated,
           "none": np.zeros(0, np.int64)}[condition]
    x = item.target
    o, n = len(ctx), len(x)
    if o + n > seq_length:
        raise ValueError(f"probe item {item.group}: {o}+{n} tokens exceed {seq_length}")
    tokens = torch.full((seq_length,), eod, dtype=torch.int64)
    labels = torch.full((seq_length,), eod, dtype=torch.int64)
    loss_mask = torch.zeros(seq_length)
    doc_ids = torch.zeros(seq_length, dtype=torch.int32)
    lang_ids = torch.ones(seq_length, dtype=torch.int32)
    tokens[:o] = torch.from_numpy(ctx)
    tokens[o:o + n] = torch.from_numpy(x)
    labels[o:o + n - 1] = torch.from_numpy(x[1:])
    loss_mask[o:o + n - 1] = 1.0
    lang_ids[:o] = 0
    k = int(o > 0)  # context is document 0 when present
    doc_ids[o:o + n] = k
    doc_ids[o + n:] = k + 1  # padding
    return {"tokens": tokens, "labels": labels, "loss_mask": loss_mask,
            "position_ids": torch.arange(seq_length), "doc_ids": doc_ids, "lang_ids": lang_ids}


def probe_batches(probe: dict, seq_length: int, eod: int, batch: int = 8) -> dict:
    """``{(lang, condition): [batch dict, ...]}``; items in order, ``batch`` per batch."""
    out = {}
    for lang, items in probe.items():
        for cond in CONDITIONS:
            seqs = [probe_sequence(it, cond, seq_length, eod) for it in items]
            if not seqs:
                out[(lang, cond)] = []
                continue
            out[(lang, cond)] = [{k: torch.stack([s[k] for s in seqs[b:b + batch]])
                                  for k in seqs[0]} for b in range(0, len(seqs), batch)]
    return out


def probe_losses(model, batches: dict, mode: str) -> dict:
    """``{(lang, condition): (per-item loss sums, per-item token counts)}`` under ``mode``."""
    from xlda.ablation.forward import per_token_losses

    out = {}
    for key, bs in batches.items():
        sums, cnts = [], []
        for b, loss in per_token_losses(model, bs, mode):
            m = b["loss_mask"].double()
            sums.append((loss * m).sum(-1).cpu().numpy())
            cnts.append(m.sum(-1).cpu().numpy())
        out[key] = (np.concatenate(sums) if sums else np.zeros(0),
                    np.concatenate(cnts) if cnts else np.zeros(0))
    return out
