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


def _blocks(bm):
    return [t.tolist() for t in (bm.kv_num_blocks, bm.kv_indices, bm.full_kv_num_blocks,
                                 bm.full_kv_indices, bm.q_num_blocks, bm.q_indices,
                                 bm.full_q_num_blocks, bm.full_q_indices)]


def _reference_blocks(doc, lang, mode, block):
    from torch.nn.attention.flex_attention import create_block_mask

    from xlda.attention.flex import mask_mod_for

    S = doc.shape[1]  # create_block_mask materialises the dense mask: the oracle here
    return create_block_mask(mask_mod_for(doc, lang, mode), doc.shape[0], None, S, S,
                             device="cpu", BLOCK_SIZE=block)


@pytest.mark.parametrize("mode", ["xlda", "document", "causal"])
@pytest.mark.parametrize("name", list(NAMED))
def test_block_structure_equals_create_block_mask(name, mode):
    from xlda.attention.flex import build_block_mask

    doc, lang = named(name)
    for block in (2, 4, 5, 16):  # 5: a padded tail block
        ours = build_block_mask(MaskParams(doc, lang, mode), 16, 16, block=block)
        assert _blocks(ours) == _blocks(_reference_blocks(doc, lang, mode, block)), block
        assert ours.BLOCK_SIZE == (block, block) and ours.seq_lengths == (16, 16)


def test_block_structure_hand_built():
    from xlda.attention.flex import block_structure

    # en 4 | ko 4 | en 4 | ko 4, blocks of 4: block j is document j
    doc, lang = batch(*[(torch.arange(16, dtype=torch.int32) // 4, torch.tensor([0, 1] * 2).repeat_interleave(4).int())])
    partial, full = block_structure(doc, lang, "xlda", 4)
    # a document sees the other language's earlier documents in full, its own language's never
    assert full[0, 0].int().tolist() == [[0, 0, 0, 0], [1, 0, 0, 0], [0, 1, 0, 0], [1, 0, 1, 0]]
    assert partial[0, 0].int().tolist() == [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1]]


from hypothesis import given, settings, strategies as st  # noqa: E402


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), S=st.integers(1, 70), block=st.sampled_from([1, 3, 8, 16]),
       mode=st.sampled_from(["xlda", "document", "causal"]), B=st.integers(1, 3))
def test_block_structure_random_equals_create_block_mask(seed, S, block, mode, B):
    from xlda.attention.flex import build_block_mask

    g = torch.Generator().manual_seed(seed)
    doc, lang = batch(*[random_row(S, g, max_doc=10) for _ in range(B)])
    ours = build_block_mask(MaskParams(doc, lang, mode), S, S, block=block)
    assert _blocks(ours) == _blocks(_reference_blocks(doc, lang, mode, block))


def test_block_mask_rejects_ids_outside_the_contract():
    from xlda.attention.flex import build_block_mask

    doc = torch.tensor([[0, 0, 9, 9]], dtype=torch.int32)
    with pytest.raises(ValueError, match=r"doc_ids must lie in \[0, 4\)"):
        build_block_mask(MaskParams(doc, torch.zeros_like(doc)), 4, 4)
    with pytest.raises(ValueError, match="must equal the sequence length 4"):
        build_block_mask(MaskParams(doc.clamp(max=1), torch.zeros_like(doc)), 4, 8)


@pytest.mark.parametrize("mode", ["xlda", "document"])
def test_block_structure_with_resumed_documents(mode):
    from xlda.attention.flex import build_block_mask

    # doc 0 (en) is cut by doc 1 (ko) and resumed: its second piece sees its first piece
    runs = [(0, 20), (1, 12), (0, 9), (2, 15), (1, 8)]
    doc = torch.cat([torch.full((n,), d, dtype=torch.int32) for d, n in runs])[None]
    lang = torch.tensor([0, 1, 2], dtype=torch.int32)[doc.long()]
    ours = build_block_mask(MaskParams(doc, lang, mode), 64, 64, block=8)
    assert _blocks(ours) == _blocks(_reference_blocks(doc, lang, mode, 8))
