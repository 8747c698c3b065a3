import warnings

import pytest
import torch

from tests.attention.layouts import named
from tests.model.dist_fixtures import megatron_single  # noqa: F401
from xlda.attention.mask import dense_mask
from xlda.attention.params import MaskParams


def make(backend, heads=4, groups=2, hidden=32):
    from megatron.core.transformer.enums import AttnMaskType
    from megatron.core.transformer.transformer_config import TransformerConfig

    from xlda.attention.core_attention import XLDACoreAttention

    cfg = TransformerConfig(num_layers=1, hidden_size=hidden, num_attention_heads=heads,
                            num_query_groups=groups, use_cpu_initialization=True,
                            attention_dropout=0.0)
    return XLDACoreAttention(cfg, 1, AttnMaskType.causal, "self", backend=backend)


def qkv(S, B, H=4, G=2, D=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(S, B, h, D, generator=g) for h in (H, G, G)]


def oracle(q, k, v, mask):
    # sbhd -> bhsd
    qb, kb, vb = (t.permute(1, 2, 0, 3) for t in (q, k, v))
    rep = qb.shape[1] // kb.shape[1]
    o = torch.nn.functional.scaled_dot_product_attention(
        qb, kb.repeat_interleave(rep, 1), vb.repeat_interleave(rep, 1), attn_mask=mask[:, None]
    )
    S, B = q.shape[:2]
    return o.permute(2, 0, 1, 3).reshape(S, B, -1)


@pytest.mark.parametrize("backend", ["sdpa", "thd", "flex"])
@pytest.mark.parametrize("mode", ["xlda", "document", "causal"])
def test_core_attention_equals_oracle(megatron_single, backend, mode):
    doc, lang = named("batch3")
    B, S = doc.shape
    q, k, v = qkv(S, B)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        out = make(backend)(q, k, v, MaskParams(doc, lang, mode))
    assert out.shape == (S, B, 32)
    torch.testing.assert_close(out, oracle(q, k, v, dense_mask(doc, lang, mode)), atol=1e-5, rtol=1e-5)


def test_none_is_causal_and_tensor_mask_is_megatron_convention(megatron_single):
    doc, lang = named("mixed")
    q, k, v = qkv(16, 1)
    m = make("thd")
    causal = oracle(q, k, v, dense_mask(doc, lang, "causal"))
    torch.testing.assert_close(m(q, k, v, None), causal, atol=1e-5, rtol=1e-5)
    masked_out = ~dense_mask(doc, lang, "xlda")[:, None]  # True = masked (megatron)
    torch.testing.assert_close(m(q, k, v, masked_out), oracle(q, k, v, ~masked_out[:, 0]), atol=1e-5, rtol=1e-5)


def test_bf16_inputs_run_in_fp32(megatron_single):
    doc, lang = named("mixed")
    q, k, v = qkv(16, 1)
    out = make("thd")(q.bfloat16(), k.bfloat16(), v.bfloat16(), MaskParams(doc, lang))
    assert out.dtype == torch.bfloat16
    ref = oracle(q.bfloat16().float(), k.bfloat16().float(), v.bfloat16().float(), dense_mask(doc, lang, "xlda"))
    torch.testing.assert_close(out.float(), ref, atol=1e-2, rtol=1e-2)


def test_errors(megatron_single):
    doc, lang = named("mixed")
    q, k, v = qkv(8, 1)
    with pytest.raises(ValueError, match=r"MaskParams shape \(1, 16\) does not match .*seq=8"):
        make("thd")(q, k, v, MaskParams(doc, lang))
    with pytest.raises(TypeError, match="must be xlda.attention.params.MaskParams"):
        make("thd")(q, k, v, {"doc_ids": doc})
    with pytest.raises(ValueError, match="unknown attention backend 'xformers'"):
        make("xformers")
    if not __import__("xlda.attention.te", fromlist=["x"]).te_available():
        with pytest.raises(ImportError, match="use attention_backend='thd' or 'sdpa' instead \\('flex' too on a GPU"):
            make("te")
