"""MaskParams: the one object that carries the XLDA mask through megatron-core.

It is passed as ``attention_mask=`` to ``GPTModel.forward``; megatron-core hands it unchanged to
the core-attention module of every layer (decoder and MTP). Whatever an executor derives from it
(dense mask, THD layout, flex BlockMask) is computed once per micro-batch and cached here, so all
layers share it.
"""
from __future__ import annotations

from typing import Any, Callable

import torch

from xlda.attention.mask import check_ids, check_mode, dense_mask


class MaskParams:
    """doc_ids, lang_ids: [B, S] integer tensors; mode: ``xlda`` | ``document`` | ``causal``."""

    def __init__(self, doc_ids: torch.Tensor, lang_ids: torch.Tensor, mode: str = "xlda"):
        check_mode(mode)
        check_ids(doc_ids, lang_ids)
        self.doc_ids = doc_ids
        self.lang_ids = lang_ids
        self.mode = mode
        self._cache: dict[Any, Any] = {}

    def __repr__(self) -> str:
        return f"MaskParams(shape={tuple(self.doc_ids.shape)}, mode={self.mode!r})"

    @property
    def shape(self) -> torch.Size:
        return self.doc_ids.shape

    @property
    def device(self) -> torch.device:
        return self.doc_ids.device

    def cached(self, key: Any, build: Callable[[], Any]) -> Any:
        """Return the derived structure under ``key``, building it on first use."""
        if key not in self._cache:
            self._cache[key] = build()
        return self._cache[key]

    def to(self, device) -> "MaskParams":
        return MaskParams(self.doc_ids.to(device), self.lang_ids.to(device), self.mode)

    def dense(self) -> torch.Tensor:
        """bool [B, S, S], True = may attend (see xlda.attention.mask)."""
        return self.cached("dense", lambda: dense_mask(self.doc_ids, self.lang_ids, self.mode))

    def thd_layout(self):
        from xlda.attention.thd import build_thd_layout

        return self.cached("thd", lambda: build_thd_layout(self.doc_ids, self.lang_ids, self.mode))

    def block_mask(self, seq_len_q: int | None = None, seq_len_kv: int | None = None):
        from xlda.attention.flex import build_block_mask

        S = self.doc_ids.shape[1]
        q, kv = seq_len_q or S, seq_len_kv or S
        return self.cached(("flex", q, kv), lambda: build_block_mask(self, q, kv))
