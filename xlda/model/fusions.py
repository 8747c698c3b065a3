"""Which megatron-core fused kernels a model uses: on for CUDA when the kernel is importable.

megatron-core's defaults keep every fusion off; Megatron-LM's arguments turn them on and fail
when the kernel is missing. Here each one is enabled only where it will actually run, so the same
recipe trains on CPU (all off) and on H100s (all available ones on), and one start-up line says
which are on and why the others are off.

- gradient_accumulation_fusion: TE linears accumulate wgrad into ``main_grad`` themselves; local
  linears need apex's ``fused_weight_gradient_mlp_cuda``.
- bias_activation_fusion: megatron's fused (bias-)SwiGLU/GeLU (``megatron.core.fusions``); GeLU
  without SwiGLU needs a bias (megatron-core's own rule).
- apply_rope_fusion: TE's fused RoPE (megatron-core exposes it as
  ``rope_utils.fused_apply_rotary_pos_emb``; None without TE).
- persist_layer_norm: apex's persistent LayerNorm; RMSNorm has none.
- bias_dropout_fusion: megatron's fused bias-dropout-add.
masked_softmax_fusion stays off: XLDACoreAttention computes its own attention.
"""
from __future__ import annotations

import importlib
import importlib.util
from typing import Callable

FUSIONS = ("gradient_accumulation_fusion", "bias_activation_fusion", "apply_rope_fusion",
           "persist_layer_norm", "bias_dropout_fusion")

# kernel probes: name -> (module, attribute that must be non-None or None for "importable")
PROBES = {
    "apex_wgrad": ("fused_weight_gradient_mlp_cuda", None),
    "mcore_swiglu": ("megatron.core.fusions.fused_bias_swiglu", "bias_swiglu_impl"),
    "mcore_gelu": ("megatron.core.fusions.fused_bias_gelu", "bias_gelu_impl"),
    "te_rope": ("megatron.core.models.common.embeddings.rope_utils", "fused_apply_rotary_pos_emb"),
    "apex_persist_ln": ("megatron.core.fusions.fused_layer_norm", "HAVE_PERSIST_LAYER_NORM"),
    "mcore_bias_dropout": ("megatron.core.fusions.fused_bias_dropout", "get_bias_dropout_add"),
}


def kernel_importable(probe: str) -> bool:
    module, attr = PROBES[probe]
    try:
        if attr is None:
            return importlib.util.find_spec(module) is not None
        value = getattr(importlib.import_module(module), attr, None)
    except ImportError:
        return False
    return bool(value) if isinstance(value, bool) else value is not None


def fusion_plan(model_cfg, cuda: bool,
                importable: Callable[[str], bool] = kernel_importable) -> dict[str, tuple[bool, str]]:
    """{fusion: (on, why)} for ``model_cfg`` on this device."""
    if not cuda:
        return {name: (False, "no CUDA") for name in FUSIONS}
    te = model_cfg.transformer_impl == "transformer_engine"
    out = {}
    if te:
        out["gradient_accumulation_fusion"] = (True, "TE linears")
    elif importable("apex_wgrad"):
        out["gradient_accumulation_fusion"] = (True, "apex fused_weight_gradient_mlp_cuda")
    else:
        out["gradient_accumulation_fusion"] = (False, "local linears without apex "
                                               "fused_weight_gradient_mlp_cuda")
    if model_cfg.swiglu:
        ok = importable("mcore_swiglu")
        out["bias_activation_fusion"] = (ok, "fused SwiGLU" if ok else "fused_bias_swiglu missing")
    elif model_cfg.add_bias_linear:
        ok = importable("mcore_gelu")
        out["bias_activation_fusion"] = (ok, "fused bias-GeLU" if ok else "fused_bias_gelu missing")
    else:
        out["bias_activation_fusion"] = (False, "GeLU without bias has no fused kernel")
    if model_cfg.position_embedding_type != "rope":
        out["apply_rope_fusion"] = (False, "no RoPE")
    else:
        ok = importable("te_rope")
        out["apply_rope_fusion"] = (ok, "TE fused RoPE" if ok else "needs Transformer Engine")
    if model_cfg.normalization != "LayerNorm":
        out["persist_layer_norm"] = (False, f"{model_cfg.normalization} has no persistent kernel")
    elif te:
        out["persist_layer_norm"] = (False, "TE norms")
    else:
        ok = importable("apex_persist_ln")
        out["persist_layer_norm"] = (ok, "apex FastLayerNorm" if ok else "needs apex")
    ok = importable("mcore_bias_dropout")
    out["bias_dropout_fusion"] = (ok, "fused bias-dropout-add" if ok else "fused_bias_dropout missing")
    return out


def fusion_flags(plan: dict[str, tuple[bool, str]]) -> dict[str, bool]:
    return {name: on for name, (on, _) in plan.items()}


def fusion_summary(plan: dict[str, tuple[bool, str]]) -> str:
    """One line: which fusions are on, and why each of the others is off."""
    on = [n for n, (v, _) in plan.items() if v]
    off = [f"{n} ({why})" for n, (v, why) in plan.items() if not v]
    return ("[xlda] fusions on: " + (", ".join(on) or "none") + "; off: " + (", ".join(off) or "none"))
