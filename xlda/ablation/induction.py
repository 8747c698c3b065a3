"""The repeated-sequence (induction) test: does a model use its context at all?

A sequence x of ``length`` tokens after itself, [x | x], against x after another sequence,
[y | x], as ONE document: a model that attends back and copies predicts the second x better when
it has seen it (an induction head, Olsson et al. 2022); the gain ``loss([y | x]) - loss([x | x])``
on the same tokens at the same positions is 0 for a model that ignores context. (Comparing x's
first and second occurrence instead mixes in position: on the default run's first model random
tokens cost 0.11 nats MORE the second time, so that design could not show copying.)
Two kinds:

- ``random``: tokens drawn at random positions of the held-out text (tokens the model knows, in
  an order no n-gram statistics predict): only copying helps;
- ``text``: the first ``length`` tokens of held-out English documents (natural text, partly
  predictable anyway: the gain is what copying adds).

One document: every mask sees the same thing, so the test compares what the weights can do, not
what the mask allows.

Scored: the second x's predictions of its own tokens 2..length (positions length..2 length-2).
"""
from __future__ import annotations

import numpy as np
import torch

INDUCTION_SEED = 4242


def random_sequences(docs: list, eod: int, length: int = 64, n_seqs: int = 32,
                     seed: int = INDUCTION_SEED) -> np.ndarray:
    """``n_seqs`` x ``length`` tokens drawn at random positions of ``docs`` (EOD excluded)."""
    pool = np.concatenate([np.asarray(d, dtype=np.int64) for d in docs])
    pool = pool[pool != eod]
    if pool.size == 0:
        raise ValueError("induction: no tokens to draw from")
    return pool[np.random.default_rng(seed).integers(0, pool.size, size=(n_seqs, length))]


def text_sequences(docs: list, eod: int, length: int = 64, n_seqs: int = 32) -> np.ndarray:
    """The first ``length`` tokens of the first ``n_seqs`` documents at least that long."""
    out = [np.asarray(d[:length], dtype=np.int64) for d in docs
           if len(d) > length and eod not in np.asarray(d[:length])][:n_seqs]
    if not out:
        raise ValueError(f"induction: no document has {length} tokens")
    return np.stack(out)


def induction_batches(seqs: np.ndarray, eod: int, seq_length: int,
                      batch: int = 8) -> dict:
    """``{"repeat": [x | x | pad], "control": [y | x | pad]}`` batches for each row x of
    ``seqs`` (y: the next row, cyclically), one document each (padding another); both score the
    SAME tokens of the second x at the SAME positions, so position effects cancel."""
    n_seqs, length = seqs.shape
    if 2 * length > seq_length:
        raise ValueError(f"induction: two copies of {length} tokens exceed {seq_length}")
    if n_seqs < 2:
        raise ValueError("induction: the control needs at least 2 sequences")
    out = {"repeat": [], "control": []}
    for kind, first in (("repeat", seqs), ("control", np.roll(seqs, -1, axis=0))):
        for b in range(0, n_seqs, batch):
            n = min(batch, n_seqs - b)
            tokens = torch.full((n, seq_length), eod, dtype=torch.int64)
            tokens[:, :length] = torch.from_numpy(first[b:b + n])
            tokens[:, length:2 * length] = torch.from_numpy(seqs[b:b + n])
            labels = torch.full((n, seq_length), eod, dtype=torch.int64)
            labels[:, :2 * length - 1] = tokens[:, 1:2 * length]
            scored = torch.zeros(n, seq_length)
            scored[:, length:2 * length - 1] = 1.0  # x's own tokens 2..length
            doc = torch.zeros(n, seq_length, dtype=torch.int32)
            doc[:, 2 * length:] = 1
            out[kind].append({"tokens": tokens, "labels": labels, "loss_mask": scored,
                              "position_ids": torch.arange(seq_length).expand(n, -1).contiguous(),
                              "doc_ids": doc,
                              "lang_ids": torch.zeros(n, seq_length, dtype=torch.int32)})
    return out


def induction_losses(model, batches: dict, mode: str) -> dict:
    """Mean loss of the second sequence after an unrelated one (control) and after itself
    (repeat), and the gain control - repeat."""
    from xlda.ablation.forward import per_token_losses

    got = {}
    for kind, bs in batches.items():
        s = c = 0.0
        for b, loss in per_token_losses(model, bs, mode):
            m = b["loss_mask"].double()
            s += float((loss * m).sum())
            c += float(m.sum())
        got[kind] = s / c
    return {"control": got["control"], "repeat": got["repeat"],
            "gain": got["control"] - got["repeat"]}
