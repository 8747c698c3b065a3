"""xlda.evaluate.scorer: the sample layout, the vocab-parallel reductions, and scores checked
against an independent computation on the HF export (transformers' Llama), including the
truncation at the model's length and greedy generation; TP/PP/DP layouts give the same."""
import math

import pytest
import torch

from xlda.evaluate.scorer import SequenceDataset, vocab_parallel_stats

PAIRS = [([5, 6, 7], [8, 9]), ([3] * 40, [4]), ([1, 2], [3, 4, 5, 6]),
         (list(range(10, 90)), [91, 92])]  # 82 tokens: cut to the last 65 (64 inputs)


def test_sample_layout_by_hand():
    ds = SequenceDataset([([7, 8, 9, 10], 2)], width=8, pad_id=0)
    s = ds[0]
    assert s["tokens"].tolist() == [7, 8, 9, 0, 0, 0, 0, 0]
    assert s["labels"].tolist() == [8, 9, 10, 0, 0, 0, 0, 0]
    assert s["loss_mask"].tolist() == [0, 1, 1, 0, 0, 0, 0, 0]  # labels 9 and 10
    assert s["doc_ids"].tolist() == [0, 0, 0, 1, 1, 1, 1, 1]
    assert int(s["last"]) == 2 and int(s["index"]) == 0


def test_vocab_stats_by_hand_masking_padded_rows_and_ties():
    # vocab 3 of a padded 4: id 3's logit (9.0) must not count
    logits = torch.tensor([[[1.0, 2.0, 2.0, 9.0], [0.0, 0.0, 5.0, 9.0]]])
    targets = torch.tensor([[1, 0]])
    logp, greedy = vocab_parallel_stats(logits, targets, vocab_size=3)
    lse0 = math.log(math.exp(1) + 2 * math.exp(2))
    lse1 = math.log(2 + math.exp(5))
    assert logp[0].tolist() == pytest.approx([2 - lse0, 0 - lse1], abs=1e-6)
    assert greedy[0].tolist() == [1, 2]  # a tie (ids 1, 2) goes to the lowest id


def _hf_logprob(model, ctx, cont, max_len=64):
    ids = (ctx + cont)[-(max_len + 1):]
    n = min(len(cont), len(ids) - 1)
    with torch.no_grad():
        lp = model(torch.tensor([ids[:-1]])).logits[0].double().log_softmax(-1)
    tail = range(len(ids) - 1 - n, len(ids) - 1)
    return sum(float(lp[i, ids[i + 1]]) for i in tail), all(
        int(lp[i].argmax()) == ids[i + 1] for i in tail)


@pytest.fixture(scope="module")
def session(tiny_model):
    from xlda.evaluate.session import open_session

    ckpt, tok, _ = tiny_model
    return open_session(str(ckpt), tokenizer_model=str(tok), micro_batch_size=3,
                        print_fn=lambda *a, **k: None)


@pytest.fixture(scope="module")
def hf_model(tiny_model):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_model[2], dtype=torch.float32).eval()


def test_loglikelihood_is_the_hf_models(session, hf_model):
    got = session.scorer.loglikelihood(PAIRS)
    for (ctx, cont), (lp, greedy) in zip(PAIRS, got):
        want, want_greedy = _hf_logprob(hf_model, ctx, cont)
        assert lp == pytest.approx(want, abs=1e-4) and greedy == want_greedy


def test_greedy_is_the_hf_models_generate(session, hf_model):
    contexts = [[5, 6, 7], [1], list(range(10, 80))]  # the last: cut to 63 tokens
    new = session.scorer.greedy(contexts, max_new_tokens=4)
    for ctx, got in zip(contexts, new):
        ids = torch.tensor([ctx[-63:]])
        want = hf_model.generate(ids, max_new_tokens=4, do_sample=False, min_new_tokens=4,
                                 pad_token_id=0)[0, ids.shape[1]:].tolist()
        assert got == want


def test_greedy_stops_where_asked(session):
    new = session.scorer.greedy([[5, 6, 7], [8, 9]], max_new_tokens=6,
                                stop=lambda toks: len(toks) == 2)
    assert [len(n) for n in new] == [2, 2]


def test_an_empty_continuation_scores_zero_as_lm_evals_hf_and_is_counted(session, caplog):
    got = session.scorer.loglikelihood([([1, 2], []), ([5, 6, 7], [8, 9])])
    assert got[0] == (0.0, True) and got[1][0] < 0
    assert "1 of 2 requests have an empty continuation" in caplog.text


def _layout_job(rank, world, ckpt, tok, tp, pp):
    from xlda.evaluate.session import open_session

    s = open_session(ckpt, tokenizer_model=tok, tensor_parallel=tp, pipeline_parallel=pp,
                     micro_batch_size=2, print_fn=lambda *a, **k: None)
    return s.scorer.loglikelihood(PAIRS), s.scorer.greedy([[5, 6, 7], [1, 2, 3, 4]], 3)


@pytest.mark.slow
def test_tp2_pp2_dp2_score_as_one_process(tiny_model):
    from xlda.testing.distributed import run_distributed

    ckpt, tok, _ = tiny_model
    ref = run_distributed(_layout_job, 1, (str(ckpt), str(tok), 1, 1))[0]
    for tp, pp in ((2, 1), (1, 2), (1, 1)):  # (1, 1) on 2 ranks: DP 2
        for lls, gen in run_distributed(_layout_job, 2, (str(ckpt), str(tok), tp, pp)):
            assert gen == ref[1], (tp, pp)
            for (a, ga), (b, gb) in zip(lls, ref[0]):
                assert a == pytest.approx(b, abs=1e-5) and ga == gb, (tp, pp)
