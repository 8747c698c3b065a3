"""FLOP counting on hand cases; mask-pair counting against the dense oracle."""
import pytest
import torch
from hypothesis import given, settings, strategies as st

from xlda.attention.mask import dense_mask
from xlda.model.recipes import tiny, trillion_7b
from xlda.training.config import LoggingConfig
from xlda.training.metrics import FlopsModel, MetricsLogger, allowed_pairs, mfu


def _hand():
    return FlopsModel(num_layers=1, hidden_size=4, num_attention_heads=2, ffn_hidden_size=8,
                      vocab_size=10, gated_linear_unit=True)


def test_flops_hand_case():
    m = _hand()
    # qkv 2*4*(4+8)=96, proj 2*4*4=32, SwiGLU mlp 2*4*8*3=192
    assert m.layer_dense_flops_per_token() == 320
    assert m.attention_flops_per_pair() == 16  # (QK + AV) 2 * 2 * heads 2 * head_dim 2
    # 4 tokens, 6 allowed pairs: 320*4 + 16*6 + logits 2*4*10*4
    assert m.forward_flops(4, 6) == 1696
    assert m.train_flops(4, 6) == 3 * 1696


def test_flops_gqa_and_mtp():
    m = FlopsModel(num_layers=2, hidden_size=8, num_attention_heads=4, ffn_hidden_size=16,
                   vocab_size=5, num_query_groups=2, gated_linear_unit=False, mtp_num_layers=1)
    # head_dim 2: q 8, kv 2*2*2=8 -> qkv 2*8*16=256, proj 2*8*8=128, mlp 2*8*16*2=512
    assert m.layer_dense_flops_per_token() == 896
    # 3 layers (2 + MTP) dense, attention, 2 logit heads, eh_proj 2*16*8 per token
    assert m.forward_flops(1, 1) == 3 * 896 + 3 * 32 + 2 * 2 * 8 * 5 + 256


def test_7b_flops_per_token_matches_6n_rule():
    mc = trillion_7b(mtp_num_layers=None)
    m = FlopsModel.from_model_config(mc, mc.padded_vocab_size())
    n_matmul = mc.num_parameters() - mc.padded_vocab_size() * mc.hidden_size  # minus embedding
    per_token = m.train_flops(1, 0)
    norms = mc.num_layers * 2 * mc.hidden_size + mc.hidden_size  # norms have no matmul FLOPs
    assert per_token == 6 * (n_matmul - norms)


def test_allowed_pairs_hand_cases():
    doc = torch.tensor([[0, 0, 1, 1]])
    same_lang = torch.tensor([[0, 0, 0, 0]])
    diff_lang = torch.tensor([[0, 0, 1, 1]])
    assert allowed_pairs(doc, diff_lang, "causal") == 10
    assert allowed_pairs(doc, diff_lang, "xlda") == 10  # other-language doc stays visible
    assert allowed_pairs(doc, same_lang, "xlda") == 6  # same language: document mask
    assert allowed_pairs(doc, diff_lang, "document") == 6


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 5), st.integers(0, 2)), min_size=1, max_size=8),
       st.sampled_from(["xlda", "document", "causal"]))
def test_allowed_pairs_equals_dense_oracle(docs, mode):
    doc, lang = [], []
    for i, (length, la) in enumerate(docs):
        doc += [i] * length
        lang += [la] * length
    d = torch.tensor([doc], dtype=torch.int32)
    g = torch.tensor([lang], dtype=torch.int32)
    assert allowed_pairs(d, g, mode) == int(dense_mask(d, g, mode).sum())


def test_mfu_exact():
    assert mfu(2e12, 2.0, 1, 1.0) == pytest.approx(1.0)
    assert mfu(1e12, 1.0, 4, 0.5) == pytest.approx(0.5)


def test_logger_reports_tokens_mfu_and_tensorboard(tmp_path):
    lines = []
    cfg = LoggingConfig(log_interval=2, tensorboard_dir=str(tmp_path / "tb"), peak_tflops=1.0)
    log = MetricsLogger(cfg, _hand(), world_size=1, print_fn=lines.append,
                        jsonl_path=str(tmp_path / "m.jsonl"))
    assert log.record(1, {"lm loss": 2.0}, 0.1, None, 8, 20, 36) is None
    e = log.record(2, {"lm loss": 1.5}, 0.1, 0.5, 8, 20, 36, mtp_losses={"mtp_1 loss": 1.7})
    log.close()
    assert e["tokens_per_s"] > 0 and e["mfu"] > 0
    assert e["mask_density"] == pytest.approx(40 / 72)
    assert "mtp_1 loss 1.7000" in lines[0] and "MFU" in lines[0]
    assert len((tmp_path / "m.jsonl").read_text().splitlines()) == 2
    assert list((tmp_path / "tb").iterdir())


def test_mfu_needs_a_known_peak(monkeypatch):
    from xlda.training import metrics

    monkeypatch.setattr(metrics.torch.cuda, "is_available", lambda: False)
    assert metrics.default_peak_tflops() is None
    monkeypatch.setattr(metrics.torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(metrics.torch.cuda, "get_device_name", lambda *a: "NVIDIA H100 80GB HBM3")
    assert metrics.default_peak_tflops() == 989.0
    monkeypatch.setattr(metrics.torch.cuda, "get_device_name", lambda *a: "NVIDIA A100-SXM4-80GB")
    assert metrics.default_peak_tflops() == 312.0
    monkeypatch.setattr(metrics.torch.cuda, "get_device_name", lambda *a: "Some Future GPU")
    assert metrics.default_peak_tflops() is None
    lines = []
    log = MetricsLogger(LoggingConfig(log_interval=1), _hand(), world_size=1,
                        print_fn=lines.append)
    e = log.record(1, {"lm loss": 2.0}, 0.1, 0.5, 8, 20, 36)
    assert "mfu" not in e and "MFU" not in lines[0] and "TFLOP/s/dev" in lines[0]
