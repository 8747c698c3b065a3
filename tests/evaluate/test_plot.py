"""tools/plot_run.py: suite scores against tokens per language, from a hand-built metrics.jsonl."""
import json

from xlda.evaluate.plot import main, read_metrics, score_table


def _write(path, entries):
    path.write_text("".join(json.dumps(e) + "\n" for e in entries))
    return path


def _train(it, en, ko):
    return {"kind": "train", "iteration": it, "lm loss": 5.0, "tokens_en": en, "tokens_ko": ko,
            "tokens_per_s": 1.0}


ENTRIES = [
    _train(1, 90, 10), _train(2, 80, 20),
    {"kind": "eval", "iteration": 2, "suite en macro": 0.25, "suite ko macro": 0.5,
     "suite macro": 0.375, "consistency a/b": 0.75},
    _train(3, 70, 30),
    _train(3, 60, 40),  # iteration 3 again (a resumed run): the last entry counts
    _train(4, 100, 0),
    {"kind": "eval", "iteration": 4, "lm loss": 4.0},  # a loss-only evaluation: no row
    {"kind": "eval", "iteration": 4, "lm loss": 4.0, "suite en macro": 0.5, "suite ko macro": 0.5,
     "suite macro": 0.5, "consistency a/b": 1.0},
]


def test_table_by_hand(tmp_path):
    rows = score_table(*read_metrics(_write(tmp_path / "m.jsonl", ENTRIES)))
    assert [(r["iteration"], r["tokens"], r["total_tokens"]) for r in rows] == [
        (2, {"en": 170, "ko": 30}, 200), (4, {"en": 330, "ko": 70}, 400)]
    assert rows[1]["scores"] == {"suite en macro": 0.5, "suite ko macro": 0.5, "suite macro": 0.5,
                                 "consistency a/b": 1.0}


def test_cli_prints_the_table_and_writes_the_plot(tmp_path, capsys):
    m = _write(tmp_path / "m.jsonl", ENTRIES)
    assert main(["--metrics", str(m)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split("\t") == ["iteration", "tokens_en", "tokens_ko", "consistency a/b",
                                  "suite en macro", "suite ko macro", "suite macro"]
    assert out[1].split("\t") == ["2", "170", "30", "0.7500", "0.2500", "0.5000", "0.3750"]
    png = tmp_path / "suite_scores.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bad_metrics_are_one_line(tmp_path, capsys):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"kind": "train", "iteration": 1}\nnot json\n')
    assert main(["--metrics", str(bad)]) == 2
    assert capsys.readouterr().err.strip() == (
        f"plot_run: error: {bad}:2: not a JSON line (Expecting value)")
    no = _write(tmp_path / "no.jsonl", [_train(1, 1, 1)])
    assert main(["--metrics", str(no), "--no-plot"]) == 2
    assert "the metrics hold no suite scores" in capsys.readouterr().err
