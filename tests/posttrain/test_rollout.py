"""Rollouts: the KV-cached decoder gives the no-cache greedy continuations, sampling is a pure
function of (seed, key, step) (micro-batching and row order do not change it), temperature and
nucleus sampling draw by inverse CDF over the tokenizer's vocabulary, rows stop at a stop id."""
import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st

from xlda.posttrain.rollout import Generator, SamplingParams, sample_tokens, uniforms


def test_uniforms_are_a_function_of_seed_key_and_step():
    a = uniforms(7, [0, 1, 2, 3], 5)
    assert a.dtype == np.float64 and ((a >= 0) & (a < 1)).all()
    np.testing.assert_array_equal(a, uniforms(7, [0, 1, 2, 3], 5))
    np.testing.assert_array_equal(a[[2, 0]], uniforms(7, [2, 0], 5))  # per key, not per call
    assert len(set(a.tolist())) == 4
    assert not np.array_equal(a, uniforms(8, [0, 1, 2, 3], 5))
    assert not np.array_equal(a, uniforms(7, [0, 1, 2, 3], 6))


@settings(max_examples=50, deadline=None)
@given(st.integers(0, 2**63), st.lists(st.integers(0, 2**62), min_size=1, max_size=20),
       st.integers(0, 10**6))
def test_uniforms_in_unit_interval(seed, keys, step):
    u = uniforms(seed, keys, step)
    assert u.shape == (len(keys),) and ((u >= 0) & (u < 1)).all()


def _logits(probs):
    return torch.log(torch.tensor([probs], dtype=torch.float64))


def test_inverse_cdf_by_hand():
    # sorted mass [0.5 (id 2), 0.3 (id 0), 0.2 (id 1)]: cumulative 0.5, 0.8, 1.0
    x = _logits([0.3, 0.2, 0.5])
    pick = lambda u, top_p=1.0: int(sample_tokens(x, 3, 1.0, top_p, torch.tensor([u])))  # noqa
    assert (pick(0.1), pick(0.6), pick(0.85)) == (2, 0, 1)
    # top_p 0.7 keeps the tokens whose mass ranked above them is < 0.7: ids 2 and 0 (0.8 in
    # all); u 0.85 -> 0.68 of it -> id 0; the top token survives any top_p
    assert pick(0.85, top_p=0.7) == 0 and pick(0.99, top_p=0.01) == 2


def test_temperature_zero_is_argmax_and_padding_rows_never_win():
    x = torch.tensor([[1.0, 3.0, 3.0, 50.0], [0.0, -1.0, 2.0, 99.0]])  # column 3: padding
    u = torch.tensor([0.5, 0.5])
    assert sample_tokens(x, 3, 0.0, 1.0, u).tolist() == [1, 2]  # ties: the lowest id
    for _ in range(3):
        assert (sample_tokens(x, 3, 1.0, 1.0, torch.rand(2, dtype=torch.float64)) < 3).all()


def test_temperature_flattens_the_draws():
    x = _logits([0.9, 0.1]).repeat(2000, 1)
    u = torch.from_numpy(uniforms(0, range(2000), 0))
    cold = sample_tokens(x, 2, 0.5, 1.0, u).float().mean().item()  # P(id 1) = 1/82
    hot = sample_tokens(x, 2, 1.0, 1.0, u).float().mean().item()  # 0.1
    assert cold == pytest.approx(1 / 82, abs=0.01) and hot == pytest.approx(0.1, abs=0.02)


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    """A random tiny model on a trainer (SFT task: only the weights are used)."""
    from xlda import quiet

    quiet.install_cpu()
    from tests.data.fixtures import write_jsonl
    from tests.posttrain.fixtures import chat_tokenizer, sft_records, tiny_cfg
    from xlda.posttrain.cli import build_trainer

    tmp = tmp_path_factory.mktemp("rollout")
    tok = chat_tokenizer(tmp)
    data = write_jsonl(tmp / "sft.jsonl", sft_records(8, 0))
    cfg = tiny_cfg(tmp, tok, data, iters=1)
    cfg.model.hidden_dropout = cfg.model.attention_dropout = 0.0
    return build_trainer(cfg, print_fn=lambda *a, **k: None).setup()


PROMPTS = [[1, 5, 6, 7], [1, 8, 9], [1, 2, 3, 4, 5, 6, 7, 9, 12], [4]]


def test_kv_cached_greedy_equals_recomputing_the_prefix(model):
    from xlda.evaluate.scorer import Scorer

    V = model.cfg.model.vocab_size
    gen = Generator(model, V, 0, stop_ids=[2])
    got = gen.generate(PROMPTS, [0, 1, 2, 3], SamplingParams(10, temperature=0.0), 8)
    ref = Scorer(model, V, 0, 64).greedy(PROMPTS, 10, stop=lambda new: new[-1] == 2)
    assert got == ref
    assert gen.tokens_generated == sum(map(len, got))


def test_sampling_independent_of_micro_batching_and_order(model):
    V = model.cfg.model.vocab_size
    gen = Generator(model, V, 0, stop_ids=[2])
    p = SamplingParams(12, temperature=1.0, top_p=0.9, seed=3)
    whole = gen.generate(PROMPTS, [10, 11, 12, 13], p, 4)
    assert gen.generate(PROMPTS, [10, 11, 12, 13], p, 1) == whole
    assert gen.generate(PROMPTS[::-1], [13, 12, 11, 10], p, 3) == whole[::-1]
    other = gen.generate(PROMPTS, [10, 11, 12, 13], SamplingParams(12, 1.0, 0.9, seed=4), 4)
    assert other != whole


def test_rows_stop_at_a_stop_id(model):
    V = model.cfg.model.vocab_size
    free = Generator(model, V, 0, stop_ids=[V + 1]).generate(
        PROMPTS, [0, 1, 2, 3], SamplingParams(16, temperature=1.0, seed=1), 4)
    assert all(len(c) == 16 for c in free)
    stop = free[0][3]  # a token the first row samples at step 3: that row now ends there
    got = Generator(model, V, 0, stop_ids=[stop]).generate(
        PROMPTS, [0, 1, 2, 3], SamplingParams(16, temperature=1.0, seed=1), 4)
    for g, f in zip(got, free):
        cut = f.index(stop) + 1 if stop in f else len(f)
        assert g == f[:cut] and (g[-1] == stop or len(g) == 16)
    assert len(got[0]) <= 4
    with pytest.raises(ValueError, match="empty prompt"):
        Generator(model, V, 0, [2]).generate([[]], [0], SamplingParams(2), 1)


def test_decoding_skips_the_mtp_head_and_puts_it_back(tmp_path):
    """A model with a multi-token-prediction block decodes through its main head (megatron-core
    would run the MTP block, which needs labels); training sees the block again afterwards."""
    from tests.data.fixtures import write_jsonl
    from tests.posttrain.fixtures import chat_tokenizer, sft_records, tiny_cfg
    from xlda.posttrain.cli import build_trainer
    from xlda.training.checkpoint_mcore import unwrap

    tok = chat_tokenizer(tmp_path)
    cfg = tiny_cfg(tmp_path, tok, write_jsonl(tmp_path / "s.jsonl", sft_records(8, 0)), iters=1)
    cfg.model.mtp_num_layers = 1
    tr = build_trainer(cfg, print_fn=lambda *a, **k: None).setup()
    V = cfg.model.vocab_size
    got = Generator(tr, V, 0, [2]).generate(PROMPTS, [0, 1, 2, 3], SamplingParams(5, 0.0), 4)
    assert all(1 <= len(g) <= 5 for g in got)
    m = unwrap(tr.model_chunks[0])
    assert m.mtp_process and m.config.mtp_num_layers == 1
    assert "mtp_1 loss" in tr.train().history[-1]
