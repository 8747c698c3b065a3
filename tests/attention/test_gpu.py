"""GPU equivalence checks (run by benchmarks/gpu_check.sh on a lent H100/H200).

flex (compiled) forward+backward and the THD decomposition with a fused varlen kernel against the
dense oracle, fp32 and bf16. bf16 is judged against the fp32 oracle relative to the error of
bf16 SDPA with the dense mask (the best a bf16 kernel can do), not by a fixed tolerance.
"""
import pytest
import torch

from tests.attention.layouts import batch, random_row
from xlda.attention.mask import dense_mask
from xlda.attention.params import MaskParams
from xlda.attention.thd import build_thd_layout, fused_varlen_kernel, thd_attention_fused, thd_attention_reference

pytestmark = pytest.mark.gpu
MODES = ["xlda", "document", "causal"]


def make(S=512, B=2, H=8, G=2, D=64, seed=0, max_doc=300):
    g = torch.Generator().manual_seed(seed)
    doc, lang = batch(*[random_row(S, g, max_doc=max_doc) for _ in range(B)])
    q, k, v = (torch.randn(B, h, S, D, generator=g) for h in (H, G, G))
    dout = torch.randn(B, H, S, D, generator=g)
    return doc.cuda(), lang.cuda(), q.cuda(), k.cuda(), v.cuda(), dout.cuda()


def fwd_bwd(fn, q, k, v, dout, dtype):
    q, k, v = (t.to(dtype).detach().requires_grad_() for t in (q, k, v))
    o = fn(q, k, v)
    o.backward(dout.to(o.dtype))
    return [t.float() for t in (o.detach(), q.grad, k.grad, v.grad)]


def oracle(doc, lang, mode):
    mask = dense_mask(doc, lang, mode)[:, None]

    def fn(q, k, v):
        rep = q.shape[1] // k.shape[1]
        return torch.nn.functional.scaled_dot_product_attention(
            q, k.repeat_interleave(rep, 1), v.repeat_interleave(rep, 1), attn_mask=mask)
    return fn


def check(got, ref32, base=None, atol=1e-3):
    for name, a, r, b in zip(("out", "dq", "dk", "dv"), got, ref32, base or [None] * 4):
        err = (a - r).abs().max().item()
        bound = atol if b is None else 2 * (b - r).abs().max().item() + 1e-3
        assert err <= bound, f"{name}: max err {err:.3g} > {bound:.3g}"


def flex_fn(doc, lang, mode):
    from xlda.attention.flex import flex_attention_bhsd

    bm = MaskParams(doc, lang, mode).block_mask()
    return lambda q, k, v: flex_attention_bhsd(q, k, v, bm, compiled=True)


def thd_fn(doc, lang, mode, fused):
    B, S = doc.shape
    layout = build_thd_layout(doc, lang, mode)
    run = thd_attention_fused if fused else thd_attention_reference

    def fn(q, k, v):
        flat = lambda t: t.transpose(1, 2).reshape(B * S, t.shape[1], t.shape[3])
        return run(flat(q), flat(k), flat(v), layout).view(B, S, q.shape[1], q.shape[3]).transpose(1, 2)
    return fn


@pytest.mark.parametrize("mode", MODES)
def test_flex_fwd_bwd_fp32(mode):
    doc, lang, q, k, v, dout = make()
    ref = fwd_bwd(oracle(doc, lang, mode), q, k, v, dout, torch.float32)
    check(fwd_bwd(flex_fn(doc, lang, mode), q, k, v, dout, torch.float32), ref, atol=2e-3)


@pytest.mark.parametrize("mode", MODES)
def test_flex_fwd_bwd_bf16(mode):
    doc, lang, q, k, v, dout = make(S=1024, seed=1)
    ref = fwd_bwd(oracle(doc, lang, mode), q, k, v, dout, torch.float32)
    base = fwd_bwd(oracle(doc, lang, mode), q, k, v, dout, torch.bfloat16)
    check(fwd_bwd(flex_fn(doc, lang, mode), q, k, v, dout, torch.bfloat16), ref, base)


@pytest.mark.parametrize("mode", MODES)
def test_thd_reference_on_cuda_fp32(mode):
    doc, lang, q, k, v, dout = make(S=256, seed=2)
    ref = fwd_bwd(oracle(doc, lang, mode), q, k, v, dout, torch.float32)
    check(fwd_bwd(thd_fn(doc, lang, mode, fused=False), q, k, v, dout, torch.float32), ref, atol=1e-4)


@pytest.mark.parametrize("mode", MODES)
def test_thd_fused_varlen_bf16(mode):
    kernel = fused_varlen_kernel()
    if kernel is None:
        pytest.skip("no flash_attn / torch varlen_attn")
    doc, lang, q, k, v, dout = make(S=1024, seed=3)
    ref = fwd_bwd(oracle(doc, lang, mode), q, k, v, dout, torch.float32)
    base = fwd_bwd(oracle(doc, lang, mode), q, k, v, dout, torch.bfloat16)
    check(fwd_bwd(thd_fn(doc, lang, mode, fused=True), q, k, v, dout, torch.bfloat16), ref, base)


def test_tiny_model_flex_matches_sdpa_on_gpu():
    pytest.importorskip("megatron.core")
    from tests.model.dist_fixtures import init_single_process
    from xlda.model.recipes import tiny

    init_single_process()
    S, B = 256, 2
    g = torch.Generator().manual_seed(0)
    doc, lang = batch(*[random_row(S, g, max_doc=60) for _ in range(B)])
    mp = MaskParams(doc.cuda(), lang.cuda(), "xlda")
    tokens = torch.randint(0, 200, (B, S + 1), generator=g).cuda()
    pos = torch.arange(S, device="cuda").expand(B, S)
    losses, grads = {}, {}
    state = None
    for backend in ("sdpa", "flex"):
        torch.manual_seed(0)
        model = tiny(seq_length=S, vocab_size=200, attention_backend=backend).build().cuda()
        if state is None:
            state = {k: v.clone() for k, v in model.state_dict().items() if v is not None}
        else:
            model.load_state_dict(state)
        loss = model(tokens[:, :-1], pos, mp, labels=tokens[:, 1:]).mean()
        loss.backward()
        losses[backend] = loss.item()
        grads[backend] = [p.grad.float().clone() for p in model.parameters()]
    assert losses["flex"] == pytest.approx(losses["sdpa"], rel=1e-4)
    for a, b in zip(grads["flex"], grads["sdpa"]):
        torch.testing.assert_close(a, b, atol=2e-4, rtol=1e-2)
