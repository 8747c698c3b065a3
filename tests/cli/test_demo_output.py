"""What the demo and the ablation say (issue 12.8): iteration ranges that match the trainer's,
where the results went, reuse of prepared data, the ablation's own prefix, its run folder named
for resolved values and one log file per preprocess step."""
import json
from pathlib import Path

import pytest

from xlda import demo
from xlda.ablation import corpus as abl_corpus
from xlda.ablation.cli import results_dir
from xlda.training.loop import Trainer


def test_results_lines_name_every_output(tmp_path):
    lines = demo.results_lines(tmp_path, 40)
    text = "\n".join(lines)
    assert lines[0] == f"results: {tmp_path / 'summary.json'} (this summary)"
    assert f"tensorboard --logdir {tmp_path / 'tb'}" in text
    assert f"checkpoint: {tmp_path / 'ckpt' / 'iter_0000040'}" in text
    assert str(tmp_path / "ckpt" / "metrics.jsonl") in text


def test_reused_steps_say_so(tmp_path):
    said = []
    (tmp_path / "tok").mkdir()
    (tmp_path / "tok" / "tokenizer.json").write_text("{}")
    prefix = tmp_path / "data" / "corpus"
    prefix.parent.mkdir()
    Path(str(prefix) + ".manifest.json").write_text(json.dumps(
        {"languages": {"en": {"prefix": "p_en"}, "ko": {"prefix": "p_ko"}}}))
    demo.build_tokenizer({}, tmp_path / "tok", tmp_path, log=said.append)
    assert demo.preprocess({}, tmp_path / "tok.json", prefix, tmp_path, log=said.append) == \
        ["p_en", "p_ko"]
    assert said == [f"tokenizer: reusing {tmp_path / 'tok' / 'tokenizer.json'} (--fresh rebuilds it)",
                    f"preprocess: reusing the data of {prefix}.manifest.json (--fresh rebuilds it)"]


def test_ablation_steps_use_its_prefix_and_separate_logs(tmp_path, monkeypatch, capsys):
    calls = []

    def fake_run(cmd, what, log_file, echo=None, say=None):
        calls.append(log_file.name)
        say(f"{what}: done")
        out = Path(str(cmd[cmd.index("--output-prefix") + 1]) + ".manifest.json") \
            if "--output-prefix" in cmd else Path(cmd[cmd.index("--output-dir") + 1]) / "tokenizer.json"
        out.parent.mkdir(parents=True, exist_ok=True)
        langs = {l: {"prefix": f"{out.name}_{l}"} for l in abl_corpus.LANGS}
        out.write_text(json.dumps({"languages": langs}))

    monkeypatch.setattr(demo, "_run", fake_run)
    monkeypatch.setattr(abl_corpus, "num_documents", lambda prefix: 4 if "train" in prefix else 2)
    page = lambda i: {"text": f"x{i}", abl_corpus.GROUP: f"p{i}"}  # noqa: E731
    monkeypatch.setattr(abl_corpus, "read_docs", lambda paths, lang, spec: [page(i) for i in range(6)])
    inputs = {}
    for l in abl_corpus.LANGS:
        (tmp_path / f"{l}.jsonl").write_text("")
        inputs[l] = [tmp_path / f"{l}.jsonl"]
    lines = []
    abl_corpus.prepare_data(inputs, tmp_path / "work", abl_corpus.ReadSpec(group_key="page"), 2,
                            log=lines.append)
    assert calls == ["tokenizer.log", "preprocess_train.log", "preprocess_heldout.log"]
    assert all(line.startswith("[ablation] ") for line in lines), lines
    assert "[ablation] preprocess (tools/preprocess_data.py): done" in lines


def test_ablation_results_dir_names_resolved_values(tmp_path):
    from xlda.ablation.runs import AblationConfig

    a = AblationConfig(data={}, size="tiny", train_iters=300, mix={"en": 0.7, "ko": 0.3},
                       eval_samples=48, isolated_docs=48)
    name = results_dir(tmp_path, a, "tok.json").name
    assert name.startswith("results_tiny_it300_mixen0.7-ko0.3_mb8_gb8_s256_e48_i48_p128_d")
    a = AblationConfig(data={}, size="tiny", micro_batch_size=2, seq_length=128)
    assert "_it2000_" in results_dir(tmp_path, a, "t").name
    assert "_mb2_gb8_s128_" in results_dir(tmp_path, a, "t").name
    assert results_dir(tmp_path, a, "t") != results_dir(tmp_path, a, "u")  # other data
    from xlda.data.packing import FORMAT_VERSION  # another packing: runs never reused

    assert results_dir(tmp_path, a, "t").name.endswith(f"_pk{FORMAT_VERSION}")


@pytest.mark.parametrize("it, exit_interval, expect", [
    (0, 30, "iterations 1..30 of 40 (--exit-interval 30 stops at 30)"),
    (30, 30, "iterations 31..40,"),
    (0, None, "iterations 1..40,"),
    (10, 4, "iterations 11..12 of 40 (--exit-interval 4 stops at 12)"),
])
def test_trainer_announces_where_it_stops(it, exit_interval, expect):
    """The first line of Trainer._train, without building a model."""
    from xlda.training.config import RunConfig

    cfg = RunConfig()
    cfg.training.train_iters, cfg.training.exit_interval = 40, exit_interval
    said = []

    class Stop(Exception):
        pass

    t = Trainer(cfg, print_fn=said.append)
    t.rank, t.iteration, t.num_microbatches, t.dp_size, t.world = 0, it, 1, 1, 1
    t.switch = None
    t.model_chunks = _Raise(Stop)
    with pytest.raises(Stop):
        t._train(None)
    assert expect in said[0], said


class _Raise:
    def __init__(self, exc):
        self.exc = exc

    def __iter__(self):
        raise self.exc()
