"""Layer specs: megatron-core's GPT layer spec with XLDACoreAttention as core attention."""
from __future__ import annotations

import copy

from megatron.core.transformer.spec_utils import ModuleSpec

from xlda.attention.core_attention import XLDACoreAttention


def xlda_layer_spec(
    transformer_impl: str = "local",
    attention_backend: str = "sdpa",
    normalization: str = "RMSNorm",
    qk_layernorm: bool = False,
) -> ModuleSpec:
    """GPT TransformerLayer spec (local or TE linears/norms) whose core attention is XLDA's."""
    if transformer_impl == "local":
        from megatron.core.models.gpt.gpt_layer_specs import get_gpt_layer_local_spec

        spec = get_gpt_layer_local_spec(normalization=normalization, qk_layernorm=qk_layernorm)
    elif transformer_impl == "transformer_engine":
        from megatron.core.models.gpt.gpt_layer_specs import (
            get_gpt_layer_with_transformer_engine_spec,
        )

        spec = get_gpt_layer_with_transformer_engine_spec(qk_layernorm=qk_layernorm)
    else:
        raise ValueError(
            f"unknown transformer_impl {transformer_impl!r}; expected 'local' or 'transformer_engine'"
        )
    spec = copy.deepcopy(spec)  # the getters may return shared objects
    spec.submodules.self_attention.submodules.core_attention = ModuleSpec(
        module=XLDACoreAttention, params={"backend": attention_backend}
    )
    return spec


def xlda_mtp_block_spec(config, layer_spec: ModuleSpec, transformer_impl: str, vp_stage=None):
    """megatron-core's MTP block spec around our layer spec (MTP layers get XLDA attention too)."""
    from megatron.core.models.gpt.gpt_layer_specs import get_gpt_mtp_block_spec

    return get_gpt_mtp_block_spec(
        config, layer_spec, use_transformer_engine=transformer_impl == "transformer_engine",
        vp_stage=vp_stage,
    )
