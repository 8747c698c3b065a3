"""The dense XLDA mask: the oracle every attention executor is tested against.

True = the query row may attend the key column. Modes:
- ``xlda``:     k <= q and (doc[k] == doc[q] or lang[k] != lang[q])
- ``document``: k <= q and doc[k] == doc[q]
- ``causal``:   k <= q
"""
from __future__ import annotations

import torch

from xlda.attention.modes import MODES  # noqa: F401  (re-exported: the modes' old home)


def check_mode(mode: str) -> str:
    if mode not in MODES:
        raise ValueError(f"unknown attention mask mode {mode!r}; expected one of {MODES}")
    return mode


def check_ids(doc_ids: torch.Tensor, lang_ids: torch.Tensor) -> None:
    if doc_ids.dim() != 2 or lang_ids.shape != doc_ids.shape:
        raise ValueError(
            "doc_ids and lang_ids must both be [B, S] tensors of the same shape; got "
            f"{tuple(doc_ids.shape)} and {tuple(lang_ids.shape)}"
        )


def dense_mask(doc_ids: torch.Tensor, lang_ids: torch.Tensor, mode: str = "xlda") -> torch.Tensor:
    """bool [B, S, S]; O(S^2) memory, so for tests and small sequences."""
    check_mode(mode)
    check_ids(doc_ids, lang_ids)
    S = doc_ids.shape[1]
    idx = torch.arange(S, device=doc_ids.device)
    causal = (idx[None, :] <= idx[:, None]).unsqueeze(0)  # [1, q, k]
    if mode == "causal":
        return causal.expand(doc_ids.shape[0], S, S).clone()
    same_doc = doc_ids[:, :, None] == doc_ids[:, None, :]
    if mode == "document":
        return causal & same_doc
    other_lang = lang_ids[:, :, None] != lang_ids[:, None, :]
    return causal & (same_doc | other_lang)
