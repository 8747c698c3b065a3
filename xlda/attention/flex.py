"""flex_attention executor: a mask_mod from doc/lang ids and one BlockMask per micro-batch.

The BlockMask is cached on MaskParams (MaskParams.block_mask) and shared by all layers. On CUDA
flex_attention is compiled (eager flex materialises the full score matrix); on CPU eager forward
works but backward raises NotImplementedError in torch <= 2.13.
"""
from __future__ import annotations

import functools

import torch


def mask_mod_for(doc_ids: torch.Tensor, lang_ids: torch.Tensor, mode: str):
    if mode == "causal":
        def mask_mod(b, h, q, kv):
            return kv <= q
    elif mode == "document":
        def mask_mod(b, h, q, kv):
            return (kv <= q) & (doc_ids[b, kv] == doc_ids[b, q])
    elif mode == "xlda":
        def mask_mod(b, h, q, kv):
            return (kv <= q) & (
                (doc_ids[b, kv] == doc_ids[b, q]) | (lang_ids[b, kv] != lang_ids[b, q])
            )
    else:
        raise ValueError(f"unknown attention mask mode {mode!r}")
    return mask_mod


def build_block_mask(mask_params, q_len: int, kv_len: int):
    from torch.nn.attention.flex_attention import create_block_mask

    doc, lang = mask_params.doc_ids, mask_params.lang_ids
    return create_block_mask(
        mask_mod_for(doc, lang, mask_params.mode), doc.shape[0], None, q_len, kv_len,
        device=doc.device,
    )


@functools.lru_cache(maxsize=1)
def _compiled_flex():
    from torch.nn.attention.flex_attention import flex_attention

    return torch.compile(flex_attention, dynamic=False)


def flex_attention_bhsd(q, k, v, block_mask, scale=None, compiled: bool | None = None):
    """q: [B, H, S, D]; k, v: [B, H_kv, S, D]. GQA handled by flex (enable_gqa)."""
    from torch.nn.attention.flex_attention import flex_attention

    if compiled is None:
        compiled = q.is_cuda
    fn = _compiled_flex() if compiled else flex_attention
    return fn(q, k, v, block_mask=block_mask, scale=scale, enable_gqa=q.shape[1] != k.shape[1])
