"""Layer specs: megatron-core's GPT layer spec with XLDACoreAttention as core attention.

MTP (checked: megatron-core 0.16.1, 0.19): the MTP block reuses the decoder layer spec, so its
layer runs XLDACoreAttention and receives the same MaskParams object (attention_mask is passed
through unchanged). Per depth, MultiTokenPredictionLayer rolls input_ids and position_ids left by
one, and GPTModel rolls labels and loss_mask left by one, zero-filling the last position (its
loss_mask becomes 0, so no wrap-around). The mask is *not* rolled: MTP position t keeps the
doc/lang of token t, combines h_t with emb(x_{t+1}) and predicts x_{t+2}. Hence (a) no future
leak: key k carries x_{<=k+1}, query t >= k predicts x_{t+2}; (b) at the last token t of a document
the MTP prediction crosses into the next document (uses x_{t+1}, the next document's first token,
predicts its second) with doc t's attention context, the same boundary behaviour as the main
head's EOD -> first-token prediction; mask it with loss_mask (eod_mask_loss) if unwanted, since
loss_mask is rolled with the labels. RoPE in the MTP layer uses global positions 0..S-1 like the
decoder. Full activation recompute is rejected by ModelConfig (tensor_parallel.checkpoint saves
attention_mask with save_for_backward, which only takes tensors).
"""
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
