"""posttrain.py in-process: the stage argument, pretraining's flag table, one-line errors."""
from pathlib import Path

from tests.data.fixtures import write_jsonl
from tests.posttrain.fixtures import chat_tokenizer, sft_records
from xlda.posttrain.cli import main

TINY = str(Path(__file__).resolve().parents[2] / "examples" / "trillion7b" / "tiny.yaml")


def _flags(tmp_path, *extra):
    tok = chat_tokenizer(tmp_path)
    data = write_jsonl(tmp_path / "sft.jsonl", sft_records(16, seed=0))
    return ["--config", TINY, "--seq-length", "64", "--train-iters", "2",
            "--lr-decay-style", "constant", "--lr-warmup-iters", "0", "--global-batch-size", "4", "--micro-batch-size", "2",
            "--eval-interval", "100", "--eval-iters", "0",
            "--tokenizer-model", str(tok), "--data-path", str(data), *extra]


def test_sft_cli_runs_and_saves(tmp_path, capsys):
    save = tmp_path / "ckpt"
    assert main(["sft", *_flags(tmp_path, "--save", str(save))]) == 0
    out = capsys.readouterr().out
    assert "attention mask xlda -> document" in out  # tiny.yaml is a pretraining recipe
    assert "sft done: iteration 2 (finished)" in out
    assert (save / "latest_checkpointed_iteration.txt").read_text().strip() == "2"
    cfg = (save / "run_config.yaml").read_text()
    assert "stage: sft" in cfg and "attention_mask_type: document" in cfg


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(_flags(tmp_path)) == 2
    assert "give the stage first" in capsys.readouterr().err
    assert main(["sft", *_flags(tmp_path, "--data-path", str(tmp_path / "missing.jsonl"))]) == 2
    err = capsys.readouterr().err
    assert err.startswith("posttrain: error:") and "missing.jsonl: file not found" in err
    assert main(["sft", *_flags(tmp_path, "--xlda-mask", "xlda")]) == 2
    assert "use --xlda-mask document" in capsys.readouterr().err
    assert main(["sft", *_flags(tmp_path, "--dpo-bta", "0.1")]) == 2
    assert "did you mean --dpo-beta" in capsys.readouterr().err


def test_sft_starts_from_load_weights_only(tmp_path, capsys):
    pre = tmp_path / "pre"
    assert main(["sft", *_flags(tmp_path, "--save", str(pre))]) == 0
    capsys.readouterr()
    assert main(["sft", *_flags(tmp_path, "--load", str(pre), "--save", str(tmp_path / "b"))]) == 0
    out = capsys.readouterr().out
    assert "loaded weights from" in out and "starting at 0" in out
    assert "sft done: iteration 2 (finished)" in out


def test_dpo_cli_logs_rewards(tmp_path, capsys):
    import json

    from tests.posttrain.fixtures import dpo_records

    pairs = write_jsonl(tmp_path / "pairs.jsonl", dpo_records(8, seed=0))
    valid = write_jsonl(tmp_path / "valid.jsonl", dpo_records(4, seed=1))
    flags = _flags(tmp_path, "--save", str(tmp_path / "dpo"), "--dpo-beta", "0.2",
                   "--valid-data-path", str(valid), "--log-interval", "1")
    flags[flags.index("--data-path") + 1] = str(pairs)
    flags[flags.index("--eval-interval") + 1] = "2"
    assert main(["dpo", *flags]) == 0
    out = capsys.readouterr().out
    assert "dpo done: iteration 2 (finished)" in out
    assert "reward acc" in out and " eval @      2 | dpo loss" in out and "lm loss" not in out
    rows = [json.loads(x) for x in (tmp_path / "dpo" / "metrics.jsonl").read_text().splitlines()]
    train = [r for r in rows if r["kind"] == "train"]
    ev = [r for r in rows if r["kind"] == "eval"]
    assert {"reward_accuracy", "reward_margin", "reward_chosen"} <= set(train[-1])
    assert {"dpo loss", "reward_accuracy", "reward_margin"} <= set(ev[-1])
    assert "dpo loss" in train[-1] and "lm loss" not in train[-1]
    assert len(list(tmp_path.glob("valid.jsonl.ref_logps.*.npz"))) == 1
