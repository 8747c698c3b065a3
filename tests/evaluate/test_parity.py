"""The Megatron backend (xlda-megatron) and lm-eval's hf backend on the model's HF export give
the same numbers through real lm-eval: per-item log-likelihoods within 1e-4, the same greedy
generations, the same rolling log-likelihoods."""
import math

import pytest

TASKS = ["toy_mc_en", "toy_gen", "toy_rolling"]


def _run(lm, toy_tasks):
    import lm_eval

    from xlda.evaluate.suite import task_manager

    tm = task_manager([toy_tasks["tasks"]], include_defaults=False)
    return lm_eval.simple_evaluate(model=lm, tasks=TASKS, task_manager=tm, log_samples=True,
                                   bootstrap_iters=0)


@pytest.fixture(scope="module")
def both(tiny_model, toy_tasks):
    __import__("lm_eval.models")  # registers lm-eval's own backends (hf, ...)
    from lm_eval.api.registry import get_model

    from xlda.evaluate.lm_backend import XldaMegatronLM

    ckpt, tok, hf = tiny_model
    ours = _run(XldaMegatronLM(load=str(ckpt), tokenizer_model=str(tok), batch_size=4), toy_tasks)
    theirs = _run(get_model("hf")(pretrained=str(hf), device="cpu", dtype="float32", batch_size=4),
                  toy_tasks)
    return ours, theirs


def _resps(res, task):
    return [s["resps"] for s in sorted(res["samples"][task], key=lambda s: s["doc_id"])]


def test_multiple_choice_loglikelihoods_match_hf(both):
    ours, theirs = both
    a, b = _resps(ours, "toy_mc_en"), _resps(theirs, "toy_mc_en")
    assert len(a) == len(b) == 8
    worst = 0.0
    for ra, rb in zip(a, b):
        assert len(ra) == len(rb) == 3  # three choices
        for (lla, ga), (llb, gb) in zip((r[0] for r in ra), (r[0] for r in rb)):
            worst = max(worst, abs(lla - llb))
            assert ga == gb
    assert worst < 1e-4, worst
    assert ours["results"]["toy_mc_en"]["acc,none"] == theirs["results"]["toy_mc_en"]["acc,none"]


def test_greedy_generations_match_hf(both):
    ours, theirs = both
    a = [r[0][0] for r in _resps(ours, "toy_gen")]
    b = [r[0][0] for r in _resps(theirs, "toy_gen")]
    assert a == b and all(a), (a, b)
    # max_gen_toks 3, stop string w0: at most three words each
    assert all(len(t.split()) <= 3 for t in a)


def test_rolling_loglikelihoods_match_hf_past_the_model_length(both):
    ours, theirs = both
    a = [r[0][0] for r in _resps(ours, "toy_rolling")]
    b = [r[0][0] for r in _resps(theirs, "toy_rolling")]
    assert len(a) == 3 and all(math.isfinite(x) and x < 0 for x in a)
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-3 * max(1.0, max(abs(y) for y in b))
    assert max(abs(x - y) for x, y in zip(a, b)) < 1e-4 * 150  # 150 tokens at most
