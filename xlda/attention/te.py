"""Transformer Engine executor: TE DotProductAttention on the THD layout (GPU only, lazy import).

Same decomposition as xlda.attention.thd (tested there on CPU): q = flat tokens, K/V gathered
with ``layout.kv_index``, ``attn_mask_type="padding_causal_bottom_right"``.
"""
from __future__ import annotations

import importlib.util


def te_available() -> bool:
    return importlib.util.find_spec("transformer_engine") is not None


def require_te() -> None:
    if not te_available():
        raise ImportError(
            "attention_backend='te' needs Transformer Engine (transformer_engine.pytorch), which "
            "is not installed; use attention_backend='thd' or 'sdpa' instead ('flex' too on a "
            "GPU; on CPU FlexAttention has no backward)"
        )


def build_te_attention(num_heads: int, head_dim: int, num_kv_heads: int, attention_dropout: float,
                       softmax_scale: float, layer_number: int, tp_group=None):
    require_te()
    from transformer_engine.pytorch import DotProductAttention

    return DotProductAttention(
        num_attention_heads=num_heads,
        kv_channels=head_dim,
        num_gqa_groups=num_kv_heads,
        attention_dropout=attention_dropout,
        qkv_format="thd",
        attn_mask_type="padding_causal_bottom_right",
        softmax_scale=softmax_scale,
        layer_number=layer_number,
        tp_size=1,  # heads given per partition already
        tp_group=tp_group,
    )


def te_thd_forward(te_attn, q, k, v, layout):
    """q: [T, H, D]; k, v: [T, H_kv, D] flat tokens. Returns [T, H*D]."""
    kg = k.index_select(0, layout.kv_index)
    vg = v.index_select(0, layout.kv_index)
    out = te_attn(
        q, kg, vg,
        qkv_format="thd",
        attn_mask_type="padding_causal_bottom_right",
        cu_seqlens_q=layout.cu_seqlens_q,
        cu_seqlens_kv=layout.cu_seqlens_kv,
        max_seqlen_q=layout.max_seqlen_q,
        max_seqlen_kv=layout.max_seqlen_kv,
    )
    return out.reshape(q.shape[0], -1)
