"""--eval-suite during pretraining: the suite is scored on the live weights at its interval,
logged as eval metrics (metrics.jsonl, TensorBoard), and its last score is the score
tools/evaluate.py gives the checkpoint saved at that iteration."""
import json

import pytest


def _cfg(tmp_path, tok, suite, **training):
    from xlda.model.recipes import tiny
    from xlda.training.config import RunConfig

    cfg = RunConfig(model=tiny(seq_length=64, num_layers=2))
    cfg.data.mock, cfg.data.seq_length, cfg.data.xlda_alpha = True, 64, 1.0
    cfg.data.split = "90,10,0"
    cfg.data.tokenizer_type, cfg.data.tokenizer_model = "HuggingFaceTokenizer", str(tok)
    t = cfg.training
    t.train_iters, t.micro_batch_size, t.global_batch_size, t.seed = 4, 2, 4, 1234
    t.eval_suite, t.eval_suite_interval = str(suite), 2
    for k, v in training.items():
        setattr(t, k, v)
    cfg.optimizer.lr, cfg.optimizer.min_lr = 3e-3, 3e-4
    cfg.scheduler.lr_warmup_iters, cfg.scheduler.lr_wsd_decay_iters = 1, 2
    cfg.checkpoint.save = str(tmp_path / "ckpt")
    cfg.logging.tensorboard_dir = str(tmp_path / "tb")
    return cfg


def _suite(toy_tasks, tmp_path):
    text = toy_tasks["suite"].read_text()
    p = tmp_path / "suite.yaml"
    p.write_text(text + f"include_path: [{toy_tasks['tasks']}]\ndata_dir: {toy_tasks['data']}\n")
    return p


def test_suite_scores_during_training_equal_the_saved_checkpoints(tiny_model, toy_tasks, tmp_path):
    from xlda.evaluate.cli import main as evaluate
    from xlda.evaluate.during_training import suite_task
    from xlda.training import dist_env
    from xlda.training.loop import Trainer

    tok = tiny_model[1]  # a word-level tokenizer as large as the mock vocabulary
    cfg = _cfg(tmp_path, tok, _suite(toy_tasks, tmp_path), eval_interval=4, eval_iters=1)
    result = Trainer(cfg, suite_task(cfg), print_fn=lambda *a, **k: None).setup().train()
    dist_env.shutdown()
    evals = {e["iteration"]: e for e in result.eval_history}
    assert sorted(evals) == [2, 4]
    assert "lm loss" not in evals[2] and "lm loss" in evals[4]  # --eval-interval 4
    want = {"suite toy_mc_en acc", "suite toy_mc_ko acc", "suite toy_gen exact_match",
            "suite en macro", "suite ko macro", "suite macro", "suite micro",
            "consistency toy_mc_en/toy_mc_ko"}
    assert want <= set(evals[2]) and want <= set(evals[4])
    logged = [json.loads(line) for line in (tmp_path / "ckpt" / "metrics.jsonl").read_text().splitlines()]
    assert [e["iteration"] for e in logged if e["kind"] == "eval"] == [2, 4]
    assert list((tmp_path / "tb").iterdir())

    # the checkpoint of iteration 4, scored offline: the same numbers
    out = tmp_path / "offline"
    assert evaluate(["--load", str(tmp_path / "ckpt"), "--suite", str(_suite(toy_tasks, tmp_path)),
                     "--output", str(out)]) == 0
    rep = json.loads((out / "report.json").read_text())
    assert rep["model"]["iteration"] == 4
    for t in rep["tasks"]:
        metric = "acc" if t["metric"] == "acc,none" else "exact_match"
        assert evals[4][f"suite {t['task']} {metric}"] == pytest.approx(t["score"], abs=1e-12)
    assert evals[4]["suite macro"] == pytest.approx(rep["average"]["macro"])


@pytest.mark.parametrize("training,says", [
    (dict(eval_suite_interval=0), "needs --eval-suite-interval N >= 1"),
    (dict(eval_suite=None), "--eval-suite-interval/--eval-suite-limit need --eval-suite FILE"),
])
def test_bad_suite_flags_are_refused(tiny_model, toy_tasks, tmp_path, training, says):
    from xlda.training.config import ConfigError

    cfg = _cfg(tmp_path, tiny_model[1], _suite(toy_tasks, tmp_path), **training)
    with pytest.raises(ConfigError, match=None) as e:
        cfg.validate()
    assert says in str(e.value)


def test_missing_suite_data_fails_before_training(tiny_model, toy_tasks, tmp_path):
    from xlda.evaluate.during_training import suite_task
    from xlda.evaluate.session import EvalError

    p = tmp_path / "s.yaml"
    p.write_text(toy_tasks["suite"].read_text() + f"include_path: [{toy_tasks['tasks']}]\n"
                 f"data_dir: {tmp_path}\n")
    with pytest.raises(EvalError, match="task toy_mc_ko reads dataset xlda-test/toy_mc_ko, not found"):
        suite_task(_cfg(tmp_path, tiny_model[1], p))


def test_pretrain_trillion_runs_the_suite(tiny_model, toy_tasks, tmp_path, capsys):
    from xlda.cli.pretrain import main

    flags = ["--config", "examples/trillion7b/tiny.yaml", "--mock-data", "--seq-length", "64",
             "--tokenizer-type", "HuggingFaceTokenizer", "--tokenizer-model", str(tiny_model[1]),
             "--micro-batch-size", "2", "--global-batch-size", "4", "--train-iters", "2",
             "--lr-warmup-iters", "0", "--lr-wsd-decay-iters", "1", "--no-annealing",
             "--save", str(tmp_path / "ckpt"),
             "--eval-suite", str(_suite(toy_tasks, tmp_path)), "--eval-suite-interval", "2"]
    assert main(flags) == 0
    out = capsys.readouterr().out
    assert "eval @      2 | " in out and "suite toy_mc_en acc" in out and "suite macro" in out
