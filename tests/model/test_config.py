import dataclasses

import pytest
import torch

from xlda.model import ModelConfig
from xlda.model.recipes import RECIPES, proxy_1p8b, tiny, trillion_7b


def test_padded_vocab_size():
    assert ModelConfig(vocab_size=1000).padded_vocab_size() == 1024
    assert ModelConfig(vocab_size=1025).padded_vocab_size(tp=2) == 1280  # multiple of 128*2
    assert ModelConfig(vocab_size=128128).padded_vocab_size() == 128128
    assert ModelConfig(vocab_size=128128).padded_vocab_size(tp=8) == 129024


@pytest.mark.parametrize("bad, match", [
    (dict(attention_backend="xformers"), "unknown attention_backend 'xformers'"),
    (dict(attention_mask_type="sliding"), "unknown attention_mask_type 'sliding'"),
    (dict(num_attention_heads=4, num_query_groups=3), "not divisible by num_query_groups 3"),
    (dict(hidden_size=130, num_attention_heads=4), "hidden_size 130 not divisible by num_attention_heads 4"),
    (dict(transformer_impl="apex"), "unknown transformer_impl 'apex'"),
    (dict(attention_backend="flex", attention_dropout=0.1), "flex.*no attention dropout"),
    (dict(recompute_granularity="full"), "recompute_granularity='full' is not supported"),
    (dict(bf16=True, fp16=True), "exclusive"),
])
def test_validation_errors(bad, match):
    with pytest.raises(ValueError, match=match):
        tiny(**bad).validate()


def test_te_backend_without_te_says_what_to_use():
    from xlda.attention.te import te_available

    if te_available():
        pytest.skip("Transformer Engine installed")
    with pytest.raises(ValueError, match="need Transformer Engine.*use attention_backend='thd' or 'sdpa' \\(or 'flex' on a GPU"):
        tiny(attention_backend="te").validate()


def test_trillion_7b_analytic_count():
    cfg = trillion_7b()
    h, f, V, L = 4096, 11008, 128128, 32
    layer = 4 * h * h + 3 * h * f + 2 * h
    assert cfg.num_parameters() == 2 * V * h + L * layer + h == 7_525_896_192
    assert cfg.num_parameters(include_mtp=True) == 7_525_896_192 + layer + 3 * h + 2 * h * h == 7_761_846_272
    assert 1.7e9 < proxy_1p8b().num_parameters() < 1.8e9


@pytest.mark.parametrize("recipe", ["trillion_7b", "proxy_1p8b"])
def test_meta_build_matches_analytic_count(megatron_single, recipe):
    cfg = RECIPES[recipe](perform_initialization=False)
    with torch.device("meta"):
        model = cfg.build()
    main = sum(p.numel() for n, p in model.named_parameters() if not n.startswith("mtp."))
    assert main == cfg.num_parameters()
    assert sum(p.numel() for p in model.parameters()) == cfg.num_parameters(include_mtp=True)
    assert next(model.parameters()).device.type == "meta"


@pytest.mark.parametrize("over", [
    {},
    dict(num_query_groups=None, untie_embeddings_and_output_weights=False),
    dict(mtp_num_layers=1, normalization="LayerNorm", swiglu=False, qk_layernorm=True),
])
def test_tiny_build_matches_analytic_count(megatron_single, over):
    cfg = tiny(seq_length=32, **over)
    model = cfg.build()
    assert sum(p.numel() for p in model.parameters()) == cfg.num_parameters(include_mtp=True)
    assert model.config.num_query_groups == (cfg.num_query_groups or cfg.num_attention_heads)
    assert model.vocab_size == cfg.padded_vocab_size()
    core = model.decoder.layers[0].self_attention.core_attention
    assert type(core).__name__ == "XLDACoreAttention" and core.backend == "sdpa"


def test_dict_round_trip():
    cfg = trillion_7b(attention_backend="thd")
    assert ModelConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown fields"):
        ModelConfig.from_dict({**cfg.to_dict(), "num_layer": 3})


@pytest.mark.parametrize("name", sorted(RECIPES))
def test_python_recipe_is_the_yaml_recipe(name):
    """xlda.model.recipes and examples/trillion7b/<name>.yaml describe the same model, field by
    field (tests and the memory plan use the first, runs the second)."""
    import dataclasses
    from pathlib import Path

    from xlda.training.config import RunConfig

    yaml_model = RunConfig.from_yaml(Path(__file__).resolve().parents[2] / "examples" /
                                     "trillion7b" / f"{name}.yaml").model
    ours = RECIPES[name]()
    diff = {f.name: (getattr(ours, f.name), getattr(yaml_model, f.name))
            for f in dataclasses.fields(ours) if getattr(ours, f.name) != getattr(yaml_model, f.name)}
    assert diff == {}
