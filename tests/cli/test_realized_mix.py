"""The run trains on the mix it asks for: the cumulative share per language in the run's own
metrics (metrics.jsonl) is P(l), for Megatron's weighted --data-path and for --xlda-beta.

The run reads every sample of its train index once (train iters x global batch = the index's
windows), so its token count per language is the index's, and the index promises 0.01 at
>= 100 windows. The shares asked for are far from the corpus's own (equal by construction). A cosine schedule:
no WSD annealing switch, whose blend is another mix by design.
"""
import json

import pytest

from xlda.cli.pretrain import main

from .conftest import SEQ, TINY


def _run(tmp_path, data_args, d):
    log = tmp_path / "metrics.jsonl"
    flags = ["--config", TINY, *data_args, "--tokenizer-type", "HuggingFaceTokenizer",
             "--tokenizer-model", d["tokenizer"], "--seq-length", SEQ, "--train-iters", "13",
             "--micro-batch-size", "4", "--global-batch-size", "8", "--lr-warmup-iters", "1",
             "--lr-decay-style", "cosine", "--eval-interval", "0", "--log-interval", "13",
             "--split", "90,10,0", "--run-dir", str(tmp_path)]
    assert main(flags) == 0
    rows = [json.loads(x) for x in log.read_text().splitlines()]
    return [r for r in rows if r["kind"] == "train"]


def test_weighted_data_path_is_the_trained_mix(cli_data, tmp_path):
    en, ko = cli_data["prefixes"][:2]
    rows = _run(tmp_path, ["--data-path", "0.7", en, "0.3", ko], cli_data)
    last = rows[-1]
    assert last["iteration"] == 13 and last["annealing"] == 0
    total = sum(r["tokens_en"] + r["tokens_ko"] for r in rows)
    assert total == 13 * 8 * int(SEQ)  # 104 windows, every sample of the index once
    assert last["share_en"] == pytest.approx(0.7, abs=0.01)
    assert last["share_ko"] == pytest.approx(0.3, abs=0.01)
    # the cumulative share is the running sum of the per-step counts
    assert last["share_en"] == pytest.approx(sum(r["tokens_en"] for r in rows) / total)


def test_xlda_beta_is_the_trained_mix(cli_data, tmp_path):
    want = {"en": 0.6, "ko": 0.25, "ja": 0.1, "zh": 0.05}
    beta = ",".join(f"{k}={v}" for k, v in want.items())
    rows = _run(tmp_path, ["--data-path", *cli_data["prefixes"], "--xlda-alpha", "0",
                           "--xlda-beta", beta], cli_data)
    last = rows[-1]
    for lang, p in want.items():
        assert last[f"share_{lang}"] == pytest.approx(p, abs=0.01), lang


def test_pretrain_refuses_a_mix_the_guarantee_cannot_meet(cli_data, tmp_path, capsys):
    en, ko = cli_data["prefixes"][:2]
    flags = ["--config", TINY, "--data-path", "0.995", en, "0.005", ko, "--tokenizer-type",
             "HuggingFaceTokenizer", "--tokenizer-model", cli_data["tokenizer"], "--seq-length",
             SEQ, "--train-iters", "8", "--lr-warmup-iters", "1", "--lr-wsd-decay-iters", "1",
             "--run-dir", str(tmp_path)]
    assert main(flags) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("pretrain: error: language 'en' has P(l)=0.995")
    assert "0.32 tokens per window of --seq-length 64" in err[0]
