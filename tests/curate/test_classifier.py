"""tools/train_quality_classifier.py and the --quality-model scorer."""
import gzip
import itertools
import json
import random

import pytest
from datatrove.data import Document

pytest.importorskip("fasttext")

from xlda.curate.cli import train_classifier_main as train_main  # noqa: E402
from xlda.curate.steps import QualityScorer  # noqa: E402

SPAM = "buy now click here free offer subscribe cookie login deal win prize cheap".split()


def _write(path, texts):
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in texts))


def test_trained_classifier_scores_held_out_documents(corpus, tmp_path):
    with gzip.open(corpus / "libreoffice_help.en.jsonl.gz", "rt") as f:
        good = [json.loads(x)["text"][:2000] for x in itertools.islice(f, 80)]
    rng = random.Random(0)
    bad = [" ".join(rng.choice(SPAM) for _ in range(rng.randint(30, 200))) for _ in range(80)]
    _write(tmp_path / "pos.jsonl", good[:60])
    _write(tmp_path / "neg.jsonl", bad[:60])
    args = ["--positive", str(tmp_path / "pos.jsonl"), "--negative", str(tmp_path / "neg.jsonl"),
            "--dim", "16"]
    assert train_main(args + ["--output", str(tmp_path / "q.bin")]) == 0
    assert train_main(args + ["--output", str(tmp_path / "q2.bin")]) == 0
    held = [Document(t, f"g{i}", metadata={"lang": "en"}) for i, t in enumerate(good[60:])] + \
        [Document(t, f"b{i}", metadata={"lang": "en"}) for i, t in enumerate(bad[60:])]
    scores = {}
    for model in ("q.bin", "q2.bin"):
        step = QualityScorer(model_path=str(tmp_path / model), report_dir=str(tmp_path / model[:-4]))
        scores[model] = {d.id: d.metadata["quality_score"] for d in step.run(
            [Document(d.text, d.id, metadata=dict(d.metadata)) for d in held], 0, 1)}
    assert scores["q.bin"] == scores["q2.bin"]  # seeded, single thread: reproducible
    s = scores["q.bin"]
    assert all(0.0 <= v <= 1.0 for v in s.values()) and len(s) == 40
    assert min(v for k, v in s.items() if k[0] == "g") > max(v for k, v in s.items() if k[0] == "b")


def test_score_field_missing_is_dropped_and_counted(tmp_path):
    docs = [Document("a", "1", metadata={"lang": "en", "score": 2.5}),
            Document("b", "2", metadata={"lang": "en", "score": "high"}),
            Document("c", "3", metadata={"lang": "ko"})]
    kept = list(QualityScorer(score_field="score", report_dir=str(tmp_path)).run(docs, 0, 1))
    assert [(d.id, d.metadata["quality_score"]) for d in kept] == [("1", 2.5)]
    rep = json.loads((tmp_path / "00000.json").read_text())
    assert rep["counts"] == {"en": {"missing_score": 1}, "ko": {"missing_score": 1}}


def test_bad_training_input_names_file_and_line(tmp_path):
    (tmp_path / "pos.jsonl").write_text('{"text": "ok"}\nnot json\n')
    _write(tmp_path / "neg.jsonl", ["x"])
    assert train_main(["--positive", str(tmp_path / "pos.jsonl"), "--negative",
                       str(tmp_path / "neg.jsonl"), "--output", str(tmp_path / "m.bin")]) == 1


def test_balanced_accuracy_and_stratified_split_by_hand():
    from xlda.curate.classifier import balanced_accuracy, stratified_split

    # all predicted "a": accuracy 2/3, balanced (1 + 0) / 2
    assert balanced_accuracy([("a", "a"), ("a", "a"), ("a", "b")]) == (0.5, {"a": 1.0, "b": 0.0})
    rows = [("p", f"p{i}") for i in range(20)] + [("n", f"n{i}") for i in range(3)]
    valid, train = stratified_split(rows, 0.1, seed=0)
    assert sorted(r[0] for r in valid) == ["n", "p", "p"]  # 10% of 20, and at least one of 3
    assert sorted(valid + train) == sorted(rows)
    assert stratified_split(rows, 0.1, seed=0) == (valid, train)


def test_imbalance_warns_reports_balanced_accuracy_and_quantizes(corpus, tmp_path, capsys):
    with gzip.open(corpus / "libreoffice_help.en.jsonl.gz", "rt") as f:
        good = [json.loads(x)["text"][:2000] for x in itertools.islice(f, 100)]
    rng = random.Random(1)
    _write(tmp_path / "pos.jsonl", good)
    _write(tmp_path / "neg.jsonl", [" ".join(rng.choice(SPAM) for _ in range(80)) for _ in range(5)])
    assert train_main(["--positive", str(tmp_path / "pos.jsonl"), "--negative",
                       str(tmp_path / "neg.jsonl"), "--output", str(tmp_path / "q.ftz"),
                       "--dim", "16"]) == 0
    cap = capsys.readouterr()
    assert "warning: 100 positive vs 5 negative documents (20:1)" in cap.err
    r = json.loads(cap.out.strip().splitlines()[-1])
    assert (r["positive"], r["negative"], r["valid"]) == (100, 5, 11)  # 10 + 1 held out
    assert r["quantized"] and set(r["valid_recall"]) == {"__label__hq", "__label__lq"}
    assert r["valid_balanced_accuracy"] == sum(r["valid_recall"].values()) / 2
    assert "balanced accuracy" in cap.out
    # fastText's full model is 2M n-gram rows x 16 floats = 128 MB; the quantized one a few MB
    assert r["bytes"] == (tmp_path / "q.ftz").stat().st_size < 8 * 2**20
