"""The TE executor with Transformer Engine faked: how it is built (as megatron-core builds its TE
attention), what it passes per call, and the start-up backend check."""
import dataclasses
import importlib.machinery
import sys
import types

import pytest
import torch

from tests.attention.layouts import named
from xlda.attention import te
from xlda.attention.thd import build_thd_layout


@dataclasses.dataclass
class FakeParams:  # the fields of TE's AttentionParams that matter here
    qkv_dtype: torch.dtype = torch.bfloat16
    qkv_layout: str = "sbh3d"
    batch_size: int = 1
    num_heads: int = 16
    num_gqa_groups: int = 16
    max_seqlen_q: int = 128
    max_seqlen_kv: int = 128
    head_dim_qk: int = 64
    head_dim_v: int = 64
    attn_mask_type: str = "no_mask"
    attention_dropout: float = 0.0
    is_training: bool = True


class FakeDPA:
    def __init__(self, **kw):
        self.kw, self.calls = kw, []

    def __call__(self, q, k, v, **kw):
        self.calls.append((k, v, kw))
        return q


@pytest.fixture
def fake_te(monkeypatch):
    """transformer_engine with DotProductAttention and a scriptable get_attention_backend."""
    seen = {}
    root = types.ModuleType("transformer_engine")
    root.__spec__ = importlib.machinery.ModuleSpec("transformer_engine", None)
    root.__version__ = "9.9-fake"
    pt = types.ModuleType("transformer_engine.pytorch")
    pt.DotProductAttention = FakeDPA
    utils = types.ModuleType("transformer_engine.pytorch.attention.dot_product_attention.utils")
    utils.AttentionParams = FakeParams
    seen["result"] = (False, None, True, "F16_arbitrary_seqlen", False, [False, True, True])

    def get_attention_backend(params):
        seen["params"] = params
        return seen["result"]

    utils.get_attention_backend = get_attention_backend
    for name, mod in {"transformer_engine": root, "transformer_engine.pytorch": pt,
                      utils.__name__: utils}.items():
        monkeypatch.setitem(sys.modules, name, mod)
    return seen


def test_round_seqlen():
    assert [te.round_seqlen(n) for n in (1, 63, 64, 65, 4096, 4097)] == [64, 64, 64, 128, 4096, 4160]


def test_built_with_megatron_rng_tracker(fake_te, monkeypatch):
    tracker = object()
    monkeypatch.setattr(te, "_rng_tracker", lambda: tracker)
    attn = te.build_te_attention(8, 64, 2, 0.1, 0.125, layer_number=3, sequence_parallel=True)
    assert attn.kw["get_rng_state_tracker"] is tracker
    assert (attn.kw["attn_mask_type"], attn.kw["qkv_format"], attn.kw["num_gqa_groups"],
            attn.kw["sequence_parallel"], attn.kw["layer_number"]) == (
        "padding_causal_bottom_right", "thd", 2, True, 3)


def test_rng_tracker_as_megatron_core_chooses():
    from megatron.core import tensor_parallel

    t = tensor_parallel.get_cuda_rng_tracker()
    assert te._rng_tracker() is (tensor_parallel.get_cuda_rng_tracker if t.is_initialized() else None)


def test_forward_passes_layout_and_rounded_seqlens(fake_te):
    doc, lang = named("mixed")  # S = 16, longest segment 4, longest kv set 12 + 1 (the zh token)
    layout = build_thd_layout(doc, lang, "xlda")
    T, H, D = 16, 2, 4
    q, k, v = (torch.randn(T, H, D) for _ in range(3))
    attn = FakeDPA()
    out = te.te_thd_forward(attn, q, k, v, layout)
    kg, vg, kw = attn.calls[0]
    assert out.shape == (T, H * D)
    assert torch.equal(kg, k[layout.kv_index]) and torch.equal(vg, v[layout.kv_index])
    assert kw["cu_seqlens_q"] is layout.cu_seqlens_q and kw["cu_seqlens_kv"] is layout.cu_seqlens_kv
    assert (layout.max_seqlen_q, layout.max_seqlen_kv) == (4, 13)
    assert (kw["max_seqlen_q"], kw["max_seqlen_kv"]) == (64, 64)
    assert kw["attn_mask_type"] == "padding_causal_bottom_right"


def test_backend_check_names_the_backend(fake_te):
    from xlda.model.recipes import trillion_7b

    cfg = trillion_7b(transformer_impl="transformer_engine", attention_backend="te", bf16=True)
    assert te.check_te_backend(cfg, micro_batch_size=1, tp=2) == "FusedAttention (F16_arbitrary_seqlen)"
    p = fake_te["params"]
    assert (p.qkv_layout, p.attn_mask_type, p.num_heads, p.num_gqa_groups, p.head_dim_qk) == (
        "thd_thd_thd", "padding_causal_bottom_right", 16, cfg.query_groups // 2, 128)
    assert p.max_seqlen_q < p.max_seqlen_kv and p.max_seqlen_kv % 64 == 0  # cu_seqlens differ
    assert p.qkv_dtype == torch.bfloat16
    fake_te["result"] = (True, "FA3", False, None, False, [True, True, True])
    assert te.check_te_backend(cfg) == "FlashAttention (FA3)"
    fake_te["result"] = (False, False, None, True, [False, False, True])  # TE 1.x: 5 values
    with pytest.raises(te.TEBackendError, match=r"Transformer Engine 9.9-fake would run the XLDA "
                       r"THD attention .* with UnfusedDotProductAttention: a large slowdown\. "
                       r"Install cuDNN >= 9.6 .*--attention-backend flex"):
        te.check_te_backend(cfg)
