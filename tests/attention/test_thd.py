import pytest
import torch
from hypothesis import given, settings, strategies as st

from tests.attention.layouts import NAMED, batch, from_lengths, named, random_row
from xlda.attention.mask import dense_mask
from xlda.attention.thd import build_thd_layout, thd_attention_reference

DOC = torch.tensor([[0, 0, 1, 1, 2]])
LANG = torch.tensor([[0, 0, 1, 1, 0]])


def test_layout_exact_xlda():
    L = build_thd_layout(DOC, LANG, "xlda")
    assert L.cu_seqlens_q.tolist() == [0, 2, 4, 5]
    assert L.cu_seqlens_kv.tolist() == [0, 2, 6, 9]
    assert L.kv_index.tolist() == [0, 1, 0, 1, 2, 3, 2, 3, 4]
    assert (L.max_seqlen_q, L.max_seqlen_kv) == (2, 4)
    assert L.expansion_ratio == pytest.approx(9 / 5)
    assert L.attended_pairs == 13 == int(dense_mask(DOC, LANG, "xlda").sum())
    assert L.flops_ratio == pytest.approx(13 / 15)


def test_layout_exact_document_and_causal():
    L = build_thd_layout(DOC, LANG, "document")
    assert L.cu_seqlens_kv.tolist() == [0, 2, 4, 5] == L.cu_seqlens_q.tolist()
    assert L.kv_index.tolist() == [0, 1, 2, 3, 4]
    C = build_thd_layout(torch.cat([DOC, DOC]), torch.cat([LANG, LANG]), "causal")
    assert C.cu_seqlens_q.tolist() == [0, 5, 10] == C.cu_seqlens_kv.tolist()
    assert C.kv_index.tolist() == list(range(10))  # row 1 offset by S
    assert C.expansion_ratio == 1.0


def test_layout_resumed_document():
    # en doc 0 is cut by a ko doc and resumes: its second piece sees its first piece and doc 1.
    doc, lang = torch.tensor([[0, 0, 1, 0]]), torch.tensor([[0, 0, 1, 0]])
    L = build_thd_layout(doc, lang, "xlda")
    assert L.cu_seqlens_q.tolist() == [0, 2, 3, 4]
    assert L.cu_seqlens_kv.tolist() == [0, 2, 5, 9]
    assert L.kv_index.tolist() == [0, 1, 0, 1, 2, 0, 1, 2, 3]
    D = build_thd_layout(doc, lang, "document")
    assert D.cu_seqlens_kv.tolist() == [0, 2, 3, 6]
    assert D.kv_index.tolist() == [0, 1, 2, 0, 1, 3]
    for mode in ("xlda", "document"):
        check_equivalence(doc, lang, mode)


def test_layout_errors():
    with pytest.raises(ValueError, match=r"lang_ids\[0\]: token 1 .*one language per document"):
        build_thd_layout(torch.tensor([[0, 0, 1]]), torch.tensor([[0, 1, 1]]), "xlda")


def dense_reference(q, k, v, doc, lang, mode):
    """q: [B, H, S, D], k, v: [B, G, S, D]"""
    rep = q.shape[1] // k.shape[1]
    k, v = k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1)
    return torch.nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=dense_mask(doc, lang, mode)[:, None]
    )


def check_equivalence(doc, lang, mode, H=4, G=2, D=8, seed=0):
    B, S = doc.shape
    g = torch.Generator().manual_seed(seed)
    q0, k0, v0 = (torch.randn(B, h, S, D, generator=g, dtype=torch.float64) for h in (H, G, G))
    dout = torch.randn(B, H, S, D, generator=g, dtype=torch.float64)

    def grads(fn):
        q, k, v = (t.clone().requires_grad_() for t in (q0, k0, v0))
        o = fn(q, k, v)
        (o * dout).sum().backward()
        return o.detach(), q.grad, k.grad, v.grad

    ref = grads(lambda q, k, v: dense_reference(q, k, v, doc, lang, mode))
    layout = build_thd_layout(doc, lang, mode)
    flat = lambda t: t.transpose(1, 2).reshape(B * S, t.shape[1], D)

    def thd(q, k, v):
        o = thd_attention_reference(flat(q), flat(k), flat(v), layout)
        return o.view(B, S, H, D).transpose(1, 2)

    got = grads(thd)
    for name, a, b in zip(("out", "dq", "dk", "dv"), got, ref):
        torch.testing.assert_close(a, b, atol=1e-10, rtol=1e-9, msg=f"{mode} {name}")


@pytest.mark.parametrize("mode", ["xlda", "document", "causal"])
@pytest.mark.parametrize("name", list(NAMED))
def test_thd_equals_oracle_named(name, mode):
    doc, lang = named(name)
    check_equivalence(doc, lang, mode)


@pytest.mark.parametrize("mode", ["xlda", "document"])
def test_thd_equals_oracle_mha_and_fp32(mode):
    doc, lang = named("batch3")
    check_equivalence(doc, lang, mode, H=2, G=2)
    # fp32 at the tolerance used by the model tests
    B, S = doc.shape
    g = torch.Generator().manual_seed(3)
    q, k, v = (torch.randn(B, 2, S, 8, generator=g) for _ in range(3))
    flat = lambda t: t.transpose(1, 2).reshape(B * S, 2, 8)
    o = thd_attention_reference(flat(q), flat(k), flat(v), build_thd_layout(doc, lang, mode))
    torch.testing.assert_close(o.view(B, S, 2, 8).transpose(1, 2), dense_reference(q, k, v, doc, lang, mode), atol=1e-5, rtol=1e-5)


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), S=st.integers(1, 40), B=st.integers(1, 3),
       mode=st.sampled_from(["xlda", "document", "causal"]))
def test_thd_equals_oracle_random(seed, S, B, mode):
    g = torch.Generator().manual_seed(seed)
    doc, lang = batch(*[random_row(S, g) for _ in range(B)])
    L = build_thd_layout(doc, lang, mode)
    assert L.attended_pairs == int(dense_mask(doc, lang, mode).sum())
    check_equivalence(doc, lang, mode, seed=seed)


@settings(max_examples=15, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), S=st.integers(1, 32),
       mode=st.sampled_from(["xlda", "document", "causal"]))
def test_thd_equals_oracle_with_resumed_documents(seed, S, mode):
    # Runs drawn from a small pool of documents, so a document often resumes later in the row;
    # each document keeps one language (doc id d has language d % 3).
    g = torch.Generator().manual_seed(seed)
    doc = []
    while len(doc) < S:
        d = int(torch.randint(0, 5, (1,), generator=g))
        doc += [d] * int(torch.randint(1, 6, (1,), generator=g))
    doc = torch.tensor([doc[:S]])
    lang = doc % 3
    L = build_thd_layout(doc, lang, mode)
    assert L.attended_pairs == int(dense_mask(doc, lang, mode).sum())
    check_equivalence(doc, lang, mode, seed=seed)
