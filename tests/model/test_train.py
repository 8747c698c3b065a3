"""A tiny GPTModel trains on CPU with the XLDA mask; executors agree step by step."""
import warnings

import pytest
import torch

from tests.attention.layouts import batch, from_lengths
from xlda.attention.params import MaskParams
from xlda.model.recipes import tiny

S, B, STEPS = 32, 2, 3


def batches(vocab, mode="xlda", n=STEPS):
    g = torch.Generator().manual_seed(7)
    doc, lang = batch(from_lengths([5, 9, 3, 15], [0, 1, 0, 2]), from_lengths([1, 1, 20, 10], [1, 0, 1, 0]))
    out = []
    tokens = torch.randint(0, vocab, (B, S + 1), generator=g)
    for _ in range(n):  # the same batch each step, so the loss must go down
        loss_mask = torch.ones(B, S)
        loss_mask[1, :3] = 0.0
        out.append(dict(tokens=tokens[:, :-1], labels=tokens[:, 1:], loss_mask=loss_mask,
                        position_ids=torch.arange(S).expand(B, S), mask=MaskParams(doc, lang, mode)))
    return out


def loss_of(model, b):
    per_tok = model(b["tokens"], b["position_ids"], b["mask"], labels=b["labels"], loss_mask=b["loss_mask"])
    return (per_tok * b["loss_mask"]).sum() / b["loss_mask"].sum()


def build(backend, state=None, **over):
    model = tiny(seq_length=S, vocab_size=200, attention_backend=backend, **over).build()
    if state is not None:
        model.load_state_dict(state)
    return model


def train(model, data):
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    losses = []
    for b in data:
        opt.zero_grad()
        loss = loss_of(model, b)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    return losses


def test_sdpa_and_thd_train_identically_flex_evaluates_identically(megatron_single):
    ref = build("sdpa")
    state = {k: v.clone() for k, v in ref.state_dict().items() if v is not None}
    data = batches(200)
    thd = build("thd", state)
    l_sdpa, l_thd = train(ref, data), train(thd, data)
    assert l_sdpa[-1] < l_sdpa[0] - 0.05  # it learns (a repeated batch, AdamW)
    assert l_thd == pytest.approx(l_sdpa, rel=1e-5, abs=1e-6)
    for (n, p), q in zip(ref.named_parameters(), thd.parameters()):
        torch.testing.assert_close(p, q, atol=1e-5, rtol=1e-4, msg=n)
    flex = build("flex", {k: v.clone() for k, v in ref.state_dict().items() if v is not None})
    ref.eval(), flex.eval()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for b in data:
            assert loss_of(flex, b).item() == pytest.approx(loss_of(ref, b).item(), rel=1e-5)


def test_mask_changes_the_model_output(megatron_single):
    model = build("thd")
    model.eval()
    b = batches(200, n=1)[0]
    with torch.no_grad():
        losses = {m: loss_of(model, {**b, "mask": MaskParams(b["mask"].doc_ids, b["mask"].lang_ids, m)}).item()
                  for m in ("xlda", "document", "causal")}
        none = loss_of(model, {**b, "mask": None}).item()
    assert none == pytest.approx(losses["causal"], rel=1e-6)
    assert len({round(v, 6) for v in losses.values()}) == 3


def test_mtp_trains_with_xlda_mask(megatron_single, monkeypatch):
    from xlda.attention.core_attention import XLDACoreAttention

    seen = []
    orig = XLDACoreAttention.forward

    def spy(self, q, k, v, attention_mask, *a, **kw):
        seen.append(attention_mask)
        return orig(self, q, k, v, attention_mask, *a, **kw)

    monkeypatch.setattr(XLDACoreAttention, "forward", spy)
    ref = build("sdpa", mtp_num_layers=1)
    state = {k: v.clone() for k, v in ref.state_dict().items() if v is not None}
    thd = build("thd", state, mtp_num_layers=1)
    assert any(n.startswith("mtp.") for n, _ in ref.named_parameters())
    data = batches(200, n=2)
    before = {n: p.detach().clone() for n, p in ref.named_parameters() if n.startswith("mtp.")}
    l_sdpa = train(ref, data)
    # 2 decoder layers + 1 MTP layer, all given the micro-batch's MaskParams, per forward
    assert len(seen) == 3 * len(data) and all(s is data[i // 3]["mask"] for i, s in enumerate(seen))
    assert all(not torch.equal(p, before[n]) for n, p in ref.named_parameters() if n in before)
    assert l_thd_matches(thd, data, l_sdpa)


def l_thd_matches(model, data, expected):
    got = train(model, data)
    return got == pytest.approx(expected, rel=1e-5, abs=1e-6)


def test_selective_recompute_and_attention_dropout_run_with_mask_params(megatron_single):
    ref = build("thd")
    state = {k: v.clone() for k, v in ref.state_dict().items() if v is not None}
    rec = build("thd", state, recompute_granularity="selective")
    data = batches(200, n=2)
    assert train(rec, data) == pytest.approx(train(ref, data), rel=1e-5, abs=1e-6)
    drop = build("sdpa", state, attention_dropout=0.5)
    b = data[0]
    train_loss = loss_of(drop, b)
    train_loss.backward()
    drop.eval()
    with torch.no_grad():
        assert loss_of(drop, b).item() != pytest.approx(train_loss.item(), rel=1e-4)
