"""Named model recipes. Each returns a ModelConfig; keyword overrides replace fields."""
from __future__ import annotations

import dataclasses

from xlda.model.config import ModelConfig


def tiny(**overrides) -> ModelConfig:
    """CPU tests/demo: 2 layers, hidden 128, 4 heads (2 KV groups), FFN 256, vocab 1024."""
    cfg = ModelConfig(
        num_layers=2, hidden_size=128, num_attention_heads=4, num_query_groups=2,
        ffn_hidden_size=256, vocab_size=1024, seq_length=256, rotary_base=10000,
        attention_backend="sdpa",
    )
    return dataclasses.replace(cfg, **overrides)


def proxy_1p8b(**overrides) -> ModelConfig:
    """~1.74B proxy of trillion_7b for ablations: same vocab/FFN ratio (2.6875x), half width,
    3/4 depth: 24 layers, hidden 2048, 16 heads (head dim 128), FFN 5504 (= 11008/2)."""
    cfg = dataclasses.replace(
        trillion_7b(), num_layers=24, hidden_size=2048, num_attention_heads=16, ffn_hidden_size=5504,
        mtp_num_layers=None,
    )
    return dataclasses.replace(cfg, **overrides)


def trillion_7b(**overrides) -> ModelConfig:
    """Trillion-7B style: 32 layers, hidden 4096, 32 heads (MHA, head dim 128), SwiGLU FFN 11008,
    RMSNorm, untied embeddings, vocab 128128, seq 4096, MTP depth 1.

    rotary_base=100000: a middle ground between Llama-2's 10k and Llama-3's 500k for 4k context
    (our choice, not a published value; the HF converter overrides it from a checkpoint's
    rope_theta). attention_backend='flex' because the lent GPUs have no Transformer Engine; use
    'te' with transformer_impl='transformer_engine' where TE exists.
    """
    cfg = ModelConfig(
        num_layers=32, hidden_size=4096, num_attention_heads=32, num_query_groups=None,
        ffn_hidden_size=11008, vocab_size=128128, seq_length=4096, max_position_embeddings=4096,
        rotary_base=100000, normalization="RMSNorm", norm_epsilon=1e-5, swiglu=True,
        untie_embeddings_and_output_weights=True, init_method_std=0.02, hidden_dropout=0.0,
        attention_dropout=0.0, mtp_num_layers=1, mtp_loss_scaling_factor=0.1, bf16=True,
        attention_backend="flex", attention_mask_type="xlda",
    )
    return dataclasses.replace(cfg, **overrides)


RECIPES = {"tiny": tiny, "proxy_1p8b": proxy_1p8b, "trillion_7b": trillion_7b}
