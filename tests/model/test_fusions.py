"""Fusions follow the device: off on CPU, on for CUDA where each kernel is importable."""
import pytest

from xlda.model.fusions import FUSIONS, fusion_flags, fusion_plan, fusion_summary
from xlda.model.recipes import tiny, trillion_7b


def _all(ok):
    return lambda probe: ok


def test_cpu_turns_every_fusion_off_even_with_kernels():
    plan = fusion_plan(trillion_7b(), cuda=False, importable=_all(True))
    assert fusion_flags(plan) == {n: False for n in FUSIONS}
    assert fusion_summary(plan).startswith("[xlda] fusions on: none; off: gradient_accumulation_fusion (no CUDA)")


def test_cuda_with_te_stack_trillion_7b():
    cfg = trillion_7b(transformer_impl="transformer_engine")
    plan = fusion_plan(cfg, cuda=True, importable=_all(True))
    assert fusion_flags(plan) == {
        "gradient_accumulation_fusion": True, "bias_activation_fusion": True,
        "apply_rope_fusion": True, "persist_layer_norm": False,  # RMSNorm has no persistent kernel
        "bias_dropout_fusion": True}
    assert plan["persist_layer_norm"][1] == "RMSNorm has no persistent kernel"
    assert fusion_summary(plan) == (
        "[xlda] fusions on: gradient_accumulation_fusion, bias_activation_fusion, apply_rope_fusion, "
        "bias_dropout_fusion; off: persist_layer_norm (RMSNorm has no persistent kernel)")


def test_cuda_each_fusion_needs_its_own_kernel():
    seen = []

    def only(*names):
        def probe(p):
            seen.append(p)
            return p in names
        return probe

    cfg = tiny()  # local linears, SwiGLU, RoPE, RMSNorm
    flags = fusion_flags(fusion_plan(cfg, True, only("mcore_swiglu", "mcore_bias_dropout")))
    assert flags == {"gradient_accumulation_fusion": False, "bias_activation_fusion": True,
                     "apply_rope_fusion": False, "persist_layer_norm": False,
                     "bias_dropout_fusion": True}
    assert fusion_flags(fusion_plan(cfg, True, only("apex_wgrad")))["gradient_accumulation_fusion"]
    assert not fusion_flags(fusion_plan(cfg, True, only()))["bias_activation_fusion"]
    ln = tiny(normalization="LayerNorm")
    assert fusion_flags(fusion_plan(ln, True, only("apex_persist_ln")))["persist_layer_norm"]
    assert not fusion_flags(fusion_plan(ln, True, only()))["persist_layer_norm"]
    gelu = tiny(swiglu=False)  # GeLU without bias: megatron-core has no fused kernel for it
    assert fusion_plan(gelu, True, _all(True))["bias_activation_fusion"] == (
        False, "GeLU without bias has no fused kernel")


def test_transformer_config_gets_the_plan(monkeypatch):
    import xlda.model.fusions as fu

    cfg = tiny()
    tc = cfg.transformer_config()  # CPU here: everything off
    assert not any(getattr(tc, n) for n in FUSIONS) and not tc.masked_softmax_fusion
    # Fake a CUDA machine with apex's wgrad kernel (TE's RoPE stays absent: megatron-core would
    # refuse apply_rope_fusion without it).
    monkeypatch.setattr(cfg, "fusions", lambda cuda=None: fu.fusion_plan(
        cfg, True, lambda p: p in ("apex_wgrad", "mcore_swiglu", "mcore_bias_dropout")))
    tc = cfg.transformer_config()
    assert (tc.gradient_accumulation_fusion, tc.bias_activation_fusion, tc.bias_dropout_fusion,
            tc.apply_rope_fusion, tc.persist_layer_norm) == (True, True, True, False, False)


def test_fp8_with_local_linears_is_an_error():
    with pytest.raises(ValueError, match="fp8_format='e4m3' needs Transformer Engine linears.*"
                                         "--transformer-impl transformer_engine"):
        tiny(fp8_format="e4m3").validate()
