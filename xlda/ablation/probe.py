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

Two subsets of the scored tokens separate copying from transfer: ``copyable`` (the predicted
token occurs in the translation: attention can copy it) and ``native`` (it does not, and it
holds a character of the target's own script, Hangul for Korean: only knowledge carried over
from the English meaning can help).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch

CONDITIONS = ("translation", "unrelated", "none")
SUBSETS = ("native", "copyable")  # of the scored tokens (module docstring)


@dataclass
class ProbeItem:
    lang: str  # target language
    group: str  # the target's (and translation's) alignment key
    target: np.ndarray  # the target tokens placed in the sequence (its first T tokens)
    translation: np.ndarray  # context (a): the translation's first C-1 tokens + EOD
    unrelated: np.ndarray  # context (b): another source document, same length, + EOD
    unrelated_group: str
    copyable: Optional[np.ndarray] = None  # per scored token (T - 1): its label is in translation
    native: Optional[np.ndarray] = None  # per scored token: not copyable, in the target's script


def native_tokens(tokenizer, lang: str) -> np.ndarray:
    """Per vocabulary id: does the token's text hold a character of ``lang``'s own script
    (Hangul for ko, kana for ja, Han for zh; none for en)? Byte pieces of a character decode to
    nothing recognisable and count as not native."""
    from xlda.data.lang_id import _HAN, _HANGUL, _KANA

    rx = {"ko": _HANGUL, "ja": _KANA, "zh": _HAN}.get(lang)
    n = tokenizer.vocab_size
    if rx is None:
        return np.zeros(n, bool)
    return np.array([bool(rx.search(tokenizer.detokenize([i]))) for i in range(n)])


def _tie(a: str, b: str) -> str:
    return hashlib.sha1(f"{a}\0{b}".encode()).hexdigest()


def _context(doc: np.ndarray, n: int, eod: int) -> np.ndarray:
    """``doc``'s first n-1 tokens + EOD (the form a document boundary has in training)."""
    return np.concatenate([np.asarray(doc[:n - 1], dtype=np.int64), [eod]])


def build_probe(docs: dict, groups: dict, seq_length: int, eod: int, source: str = "en",
                context_len: int | None = None, min_target: int = 8,
                native: Optional[dict] = None) -> dict:
    """Probe items per target language: ``{lang: [ProbeItem, ...]}`` in the order of
    ``docs[lang]``.

    ``docs[lang][i]`` is held-out document i's token array (ending in EOD); ``groups[lang][i]``
    its alignment key. The context budget is ``context_len`` tokens (default half the
    sequence), the target gets the rest. A target without a translation, or for which no
    unrelated source document is at least as long as the context, is skipped. ``native``:
    ``{lang: native_tokens(...)}`` to mark the scored tokens' subsets (SUBSETS).
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
            target = np.asarray(doc[:T], dtype=np.int64)
            copy = np.isin(target[1:], translation[:-1])  # the EOD is not the page's text
            nat = None if native is None else native[lang][target[1:]] & ~copy
            items.append(ProbeItem(lang, g, target, translation, _context(u, n, eod), ug,
                                   copy, nat))
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
    out = {"tokens": tokens, "labels": labels, "loss_mask": loss_mask,
           "position_ids": torch.arange(seq_length), "doc_ids": doc_ids, "lang_ids": lang_ids}
    for name in SUBSETS:  # the scored tokens' subsets, at their positions
        sub = getattr(item, name)
        if sub is not None:
            m = torch.zeros(seq_length)
            m[o:o + n - 1] = torch.from_numpy(np.asarray(sub, dtype=np.float32))
            out[f"subset_{name}"] = m
    return out


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
    """``{(lang, condition): (per-item loss sums, per-item token counts)}`` under ``mode``, and
    ``{(lang, condition, subset): ...}`` for the subsets the batches mark."""
    from xlda.ablation.forward import per_token_losses

    out = {}
    for key, bs in batches.items():
        acc: dict = {}
        for b, loss in per_token_losses(model, bs, mode):
            masks = {key: b["loss_mask"].double()}
            masks.update({key + (name,): b[f"subset_{name}"].double() for name in SUBSETS
                          if f"subset_{name}" in b})
            for k, m in masks.items():
                acc.setdefault(k, ([], []))
                acc[k][0].append((loss * m).sum(-1).cpu().numpy())
                acc[k][1].append(m.sum(-1).cpu().numpy())
        out[key] = (np.zeros(0), np.zeros(0))
        for k, (sums, cnts) in acc.items():
            out[k] = (np.concatenate(sums), np.concatenate(cnts))
    return out
