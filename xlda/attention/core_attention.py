"""megatron-core core-attention module that runs the XLDA mask with a chosen executor.

Swapped into each layer's ``self_attention.submodules.core_attention`` by xlda.model.spec (decoder
and MTP layers alike). Inputs are megatron's sbhd layout: query [S, B, H/tp, D], key/value
[S, B, G/tp, D] (post-RoPE); output [S, B, H/tp * D]. ``attention_mask`` is a MaskParams (or
None = plain causal; a megatron bool mask tensor, True = masked out, is accepted by ``sdpa``).
"""
from __future__ import annotations

import math
from typing import Optional

import torch
from torch import Tensor

from megatron.core import parallel_state, tensor_parallel
from megatron.core.transformer.enums import AttnMaskType
from megatron.core.transformer.module import MegatronModule
from megatron.core.transformer.transformer_config import TransformerConfig

from xlda.attention.modes import BACKENDS
from xlda.attention.params import MaskParams
from xlda.attention.thd import thd_attention_reference


class XLDACoreAttention(MegatronModule):
    """Same constructor as megatron's DotProductAttention plus ``backend``."""

    def __init__(
        self,
        config: TransformerConfig,
        layer_number: int,
        attn_mask_type: AttnMaskType,
        attention_type: str,
        attention_dropout: Optional[float] = None,
        softmax_scale: Optional[float] = None,
        cp_comm_type: Optional[str] = None,
        pg_collection=None,
        backend: str = "sdpa",
        **kwargs,
    ):
        super().__init__(config=config)
        if backend not in BACKENDS:
            raise ValueError(f"unknown attention backend {backend!r}; expected one of {BACKENDS}")
        if config.context_parallel_size != 1:
            raise ValueError("XLDA core attention does not support context parallelism (cp=1)")
        self.backend = backend
        self.layer_number = max(1, layer_number)
        self.attn_mask_type = attn_mask_type
        tp = (
            pg_collection.tp.size()
            if pg_collection is not None and getattr(pg_collection, "tp", None) is not None
            else parallel_state.get_tensor_model_parallel_world_size()
        )
        if config.num_attention_heads % tp or config.num_query_groups % tp:
            raise ValueError(
                f"num_attention_heads={config.num_attention_heads} and num_query_groups="
                f"{config.num_query_groups} must be divisible by tensor parallel size {tp}"
            )
        self.heads = config.num_attention_heads // tp
        self.kv_heads = config.num_query_groups // tp
        self.head_dim = config.kv_channels
        self.softmax_scale = (
            softmax_scale if softmax_scale is not None else 1.0 / math.sqrt(self.head_dim)
        )
        self.dropout_p = config.attention_dropout if attention_dropout is None else attention_dropout
        if backend == "flex" and self.dropout_p > 0:
            raise ValueError("attention_backend='flex' has no attention dropout; set attention_dropout=0")
        self.te_attn = None
        if backend == "te":
            from xlda.attention.te import build_te_attention

            self.te_attn = build_te_attention(
                self.heads, self.head_dim, self.kv_heads, self.dropout_p, self.softmax_scale,
                self.layer_number, sequence_parallel=config.sequence_parallel,
            )

    # -- helpers -------------------------------------------------------------------------------
    def _p(self) -> float:
        return self.dropout_p if self.training else 0.0

    def _rng(self):
        # Dropout inside the TP RNG tracker like megatron's DotProductAttention.
        if self._p() > 0 and not self.config.sequence_parallel:
            return tensor_parallel.get_cuda_rng_tracker().fork()
        import contextlib

        return contextlib.nullcontext()

    def _upcast(self, *ts):
        # sdpa/thd are references: run softmax (and the whole product) in fp32 for half inputs.
        if ts[0].dtype in (torch.float16, torch.bfloat16):
            return tuple(t.float() for t in ts)
        return ts

    def _expand_kv(self, k: Tensor, dim: int) -> Tensor:
        rep = self.heads // self.kv_heads
        return k.repeat_interleave(rep, dim=dim) if rep > 1 else k

    # -- executors -----------------------------------------------------------------------------
    def _sdpa(self, q, k, v, mask: Optional[Tensor], is_causal: bool) -> Tensor:
        # [S, B, H, D] -> [B, H, S, D]
        qb, kb, vb = (t.permute(1, 2, 0, 3) for t in self._upcast(q, k, v))
        kb, vb = self._expand_kv(kb, 1), self._expand_kv(vb, 1)
        with self._rng():
            o = torch.nn.functional.scaled_dot_product_attention(
                qb, kb, vb, attn_mask=mask, dropout_p=self._p(), is_causal=is_causal,
                scale=self.softmax_scale,
            )
        return o.permute(2, 0, 1, 3)  # [S, B, H, D]

    def _thd(self, q, k, v, mp: MaskParams) -> Tensor:
        S, B = q.shape[:2]
        flat = lambda t: t.transpose(0, 1).reshape(B * S, t.shape[2], t.shape[3])
        qf, kf, vf = (flat(t) for t in self._upcast(q, k, v))
        with self._rng():
            o = thd_attention_reference(
                qf, kf, vf, mp.thd_layout(), scale=self.softmax_scale, dropout_p=self._p()
            )
        return o.view(B, S, self.heads, self.head_dim).transpose(0, 1)

    def _flex(self, q, k, v, mp: MaskParams) -> Tensor:
        from xlda.attention.flex import flex_attention_bhsd

        qb, kb, vb = (t.permute(1, 2, 0, 3) for t in (q, k, v))
        o = flex_attention_bhsd(qb, kb, vb, mp.block_mask(q.shape[0], k.shape[0]), self.softmax_scale)
        return o.permute(2, 0, 1, 3)

    def _te(self, q, k, v, mp: MaskParams) -> Tensor:
        from xlda.attention.te import te_thd_forward

        S, B = q.shape[:2]
        flat = lambda t: t.transpose(0, 1).reshape(B * S, t.shape[2], t.shape[3]).contiguous()
        o = te_thd_forward(self.te_attn, flat(q), flat(k), flat(v), mp.thd_layout())
        return o.view(B, S, self.heads, self.head_dim).transpose(0, 1)

    def forward(
        self,
        query: Tensor,
        key: Tensor,
        value: Tensor,
        attention_mask,
        attn_mask_type: Optional[AttnMaskType] = None,
        attention_bias: Optional[Tensor] = None,
        packed_seq_params=None,
    ) -> Tensor:
        if packed_seq_params is not None:
            raise ValueError("XLDA core attention takes the layout from MaskParams, not packed_seq_params")
        if attention_bias is not None:
            raise ValueError("XLDA core attention does not support attention_bias")
        S, B = query.shape[:2]
        if attention_mask is None:
            out = self._sdpa(query, key, value, None, is_causal=True)
        elif isinstance(attention_mask, Tensor):
            # megatron convention: True = masked out; broadcastable to [B, H, S, S]
            out = self._sdpa(query, key, value, ~attention_mask.bool(), is_causal=False)
        elif isinstance(attention_mask, MaskParams):
            if tuple(attention_mask.shape) != (B, S):
                raise ValueError(
                    f"MaskParams shape {tuple(attention_mask.shape)} does not match the attention "
                    f"input [batch={B}, seq={S}] (with sequence packing, doc_ids/lang_ids must be "
                    "[micro_batch_size, seq_length])"
                )
            if self.backend == "sdpa" and attention_mask.mode == "causal":
                out = self._sdpa(query, key, value, None, is_causal=True)  # the flash path
            elif self.backend == "sdpa":
                out = self._sdpa(query, key, value, attention_mask.dense()[:, None], is_causal=False)
            elif self.backend == "thd":
                out = self._thd(query, key, value, attention_mask)
            elif self.backend == "flex":
                out = self._flex(query, key, value, attention_mask)
            else:
                out = self._te(query, key, value, attention_mask)
        else:
            raise TypeError(
                f"attention_mask must be xlda.attention.params.MaskParams, a bool tensor or None; "
                f"got {type(attention_mask).__name__}"
            )
        return out.to(query.dtype).reshape(S, B, self.heads * self.head_dim)
