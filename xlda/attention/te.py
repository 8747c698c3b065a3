"""Transformer Engine executor: TE DotProductAttention on the THD layout (GPU only, lazy import).

Same decomposition as xlda.attention.thd (tested there on CPU): q = flat tokens, K/V gathered
with ``layout.kv_index``, ``attn_mask_type="padding_causal_bottom_right"``. Built as
megatron-core's TEDotProductAttention builds it (the TP RNG tracker for attention dropout);
``max_seqlen`` is rounded up to a multiple of 64 (cuDNN 9.6's FusedAttention wants that for
bottom-right causal masks; it is only an upper bound, so rounding up is exact). At start-up
``check_te_backend`` asks TE which backend will run this call and refuses the unfused one.
"""
from __future__ import annotations

import dataclasses
import importlib
import importlib.util

SEQLEN_MULTIPLE = 64
MASK_TYPE = "padding_causal_bottom_right"
# where TE keeps AttentionParams/get_attention_backend (TE 2.x, 2.0-2.1, 1.x)
_BACKEND_API_MODULES = (
    "transformer_engine.pytorch.attention.dot_product_attention.utils",
    "transformer_engine.pytorch.dot_product_attention.utils",
    "transformer_engine.pytorch.attention",
)


def te_available() -> bool:
    try:
        return importlib.util.find_spec("transformer_engine") is not None
    except ValueError:  # a module in sys.modules without __spec__
        return False


def require_te() -> None:
    if not te_available():
        raise ImportError(
            "attention_backend='te' needs Transformer Engine (transformer_engine.pytorch), which "
            "is not installed; use attention_backend='thd' or 'sdpa' instead ('flex' too on a "
            "GPU; on CPU FlexAttention has no backward)"
        )


def round_seqlen(n: int, multiple: int = SEQLEN_MULTIPLE) -> int:
    return -(-int(n) // multiple) * multiple


def _rng_tracker():
    """megatron-core's choice: the CUDA RNG tracker once model parallel RNG is seeded."""
    from megatron.core.tensor_parallel import get_cuda_rng_tracker

    return get_cuda_rng_tracker if get_cuda_rng_tracker().is_initialized() else None


def build_te_attention(num_heads: int, head_dim: int, num_kv_heads: int, attention_dropout: float,
                       softmax_scale: float, layer_number: int, tp_group=None,
                       sequence_parallel: bool = False):
    require_te()
    from transformer_engine.pytorch import DotProductAttention

    return DotProductAttention(
        num_attention_heads=num_heads,
        kv_channels=head_dim,
        num_gqa_groups=num_kv_heads,
        attention_dropout=attention_dropout,
        qkv_format="thd",
        attn_mask_type=MASK_TYPE,
        softmax_scale=softmax_scale,
        layer_number=layer_number,
        sequence_parallel=sequence_parallel,
        tp_size=1,  # heads given per partition already
        get_rng_state_tracker=_rng_tracker(),
        tp_group=tp_group,
    )


def te_thd_forward(te_attn, q, k, v, layout):
    """q: [T, H, D]; k, v: [T, H_kv, D] flat tokens. Returns [T, H*D]."""
    kg = k.index_select(0, layout.kv_index)
    vg = v.index_select(0, layout.kv_index)
    out = te_attn(
        q, kg, vg,
        qkv_format="thd",
        attn_mask_type=MASK_TYPE,
        cu_seqlens_q=layout.cu_seqlens_q,
        cu_seqlens_kv=layout.cu_seqlens_kv,
        max_seqlen_q=round_seqlen(layout.max_seqlen_q),
        max_seqlen_kv=round_seqlen(layout.max_seqlen_kv),
    )
    return out.reshape(q.shape[0], -1)


# -- which TE backend runs the XLDA call --------------------------------------------------------
class TEBackendError(RuntimeError):
    pass


def _backend_api():
    for name in _BACKEND_API_MODULES:
        try:
            mod = importlib.import_module(name)
        except ImportError:
            continue
        if hasattr(mod, "get_attention_backend") and hasattr(mod, "AttentionParams"):
            return mod
    return None


def _selected(result) -> str:
    """Name of the backend get_attention_backend chose. It returns (use_flash, [flash sub-backend,]
    use_fused, fused sub-backend, use_unfused, available) depending on the TE version."""
    r = tuple(result)
    use_flash, use_unfused = bool(r[0]), bool(r[-2])
    use_fused = bool(r[2] if len(r) >= 6 else r[1])
    sub = r[3] if len(r) >= 6 else r[2]
    if use_flash:
        fa = r[1] if len(r) >= 6 and r[1] is not None else None
        return "FlashAttention" + (f" ({fa})" if fa else "")
    if use_fused:
        return "FusedAttention" + (f" ({getattr(sub, 'name', sub)})" if sub is not None else "")
    return "UnfusedDotProductAttention" if use_unfused else "none"


def te_attention_backend(num_heads: int, num_kv_heads: int, head_dim: int, dtype, seq_length: int,
                         attention_dropout: float = 0.0, micro_batch_size: int = 1) -> str:
    """TE's choice for the XLDA THD call (query segments shorter than their K/V sets:
    cu_seqlens_q != cu_seqlens_kv, bottom-right causal), e.g. 'FusedAttention (F16_arbitrary_seqlen)'."""
    require_te()
    api = _backend_api()
    if api is None:
        raise TEBackendError("this Transformer Engine has no get_attention_backend (looked in "
                             f"{', '.join(_BACKEND_API_MODULES)}); install TE >= 1.11")
    import torch

    wanted = dict(qkv_type=torch.Tensor, qkv_dtype=dtype, qkv_layout="thd_thd_thd",
                  batch_size=max(2, 8 * micro_batch_size),  # segments of a micro-batch
                  num_heads=num_heads, num_gqa_groups=num_kv_heads,
                  max_seqlen_q=round_seqlen(max(1, seq_length // 2)),
                  max_seqlen_kv=round_seqlen(seq_length), head_dim_qk=head_dim, head_dim_v=head_dim,
                  attn_mask_type=MASK_TYPE, attention_dropout=attention_dropout, is_training=True)
    names = {f.name for f in dataclasses.fields(api.AttentionParams)}
    params = api.AttentionParams(**{k: v for k, v in wanted.items() if k in names})
    return _selected(api.get_attention_backend(params))


def check_te_backend(model_cfg, micro_batch_size: int = 1, tp: int = 1) -> str:
    """Start-up check of attention_backend='te': the backend name, or TEBackendError when TE would
    fall back to its unfused attention (a large slowdown) or to nothing."""
    dtype = model_cfg.torch_params_dtype()
    import torch

    if dtype == torch.float32:
        dtype = torch.bfloat16  # activations under --bf16 / Float16Module
    name = te_attention_backend(
        model_cfg.num_attention_heads // tp, model_cfg.query_groups // tp, model_cfg.head_dim,
        dtype, model_cfg.seq_length, model_cfg.attention_dropout, micro_batch_size)
    if name.startswith(("FlashAttention", "FusedAttention")):
        return name
    import transformer_engine

    raise TEBackendError(
        f"Transformer Engine {getattr(transformer_engine, '__version__', '?')} would run the XLDA "
        f"THD attention ({MASK_TYPE}, cu_seqlens_q != cu_seqlens_kv, {dtype}, head dim "
        f"{model_cfg.head_dim}) with {name}: a large slowdown. Install cuDNN >= 9.6 (for TE's "
        "FusedAttention) or flash-attn 2 (FlashAttention), check that NVTE_FUSED_ATTN / "
        "NVTE_FLASH_ATTN are not set to 0, or train with --attention-backend flex "
        "(FlexAttention, no TE needed)")
