import warnings

import pytest
import torch

from tests.attention.layouts import NAMED, batch, named, random_row
from xlda.attention.flex import flex_attention_bhsd
from xlda.attention.mask import dense_mask
from xlda.attention.params import MaskParams

pytest.importorskip("torch.nn.attention.flex_attention")


def dense_reference(q, k, v, mask):
    rep = q.shape[1] // k.shape[1]
    return torch.nn.functional.scaled_dot_product_attention(
        q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), attn_mask=mask[:, None]
    )


def run_flex(doc, lang, mode, H=4, G=2, D=8, seed=0):
    B, S = doc.shape
    g = torch.Generator().manual_seed(seed)
    q, k, v = (torch.randn(B, h, S, D, generator=g) for h in (H, G, G))
    mp = MaskParams(doc, lang, mode)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # "flex_attention called without torch.compile()"
        out = flex_attention_bhsd(q, k, v, mp.block_mask(), compiled=False)
    return out, dense_reference(q, k, v, dense_mask(doc, lang, mode))


@pytest.mark.parametrize("mode", ["xlda", "document", "causal"])
@pytest.mark.parametrize("name", list(NAMED))
def test_flex_forward_equals_oracle(name, mode):
    out, ref = run_flex(*named(name), mode)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("seed", range(4))
def test_flex_forward_random_mha(seed):
    g = torch.Generator().manual_seed(seed)
    doc, lang = batch(*[random_row(37, g) for _ in range(2)])  # S not a multiple of the block
    out, ref = run_flex(doc, lang, "xlda", H=2, G=2, seed=seed)
    torch.testing.assert_close(out, ref, atol=1e-5, rtol=1e-5)


def test_block_mask_cached_once_per_micro_batch():
    doc, lang = named("mixed")
    mp = MaskParams(doc, lang)
    assert mp.block_mask() is mp.block_mask()
    assert mp.dense() is mp.dense() and mp.thd_layout() is mp.thd_layout()
    assert MaskParams(doc, lang).block_mask() is not mp.block_mask()


@pytest.mark.slow  # one CPU compile of flex_attention takes ~1 min
def test_compiled_flex_does_not_recompile_per_micro_batch():
    """A fresh MaskParams (new mask_mod closure) per micro-batch must reuse the compiled kernel."""
    import torch._dynamo

    g = torch.Generator().manual_seed(0)
    q, k, v = torch.randn(2, 4, 256, 32), torch.randn(2, 2, 256, 32), torch.randn(2, 2, 256, 32)
    old = torch._dynamo.config.error_on_recompile
    try:
        for i in range(3):
            doc, lang = batch(*[random_row(256, g, max_doc=60) for _ in range(2)])
            mp = MaskParams(doc, lang)
            out = flex_attention_bhsd(q, k, v, mp.block_mask(), compiled=True)
            torch.testing.assert_close(out, dense_reference(q, k, v, mp.dense()), atol=1e-5, rtol=1e-5)
            torch._dynamo.config.error_on_recompile = True
    finally:
        torch._dynamo.config.error_on_recompile = old
