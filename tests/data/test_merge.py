"""tools/merge_datasets.py: per-language merge of preprocess shards (issue 12, item 7)."""
import json

import pytest

from tests.data.fixtures import word_level_tokenizer, write_jsonl
from tests.data.test_preprocess import DOCS, WORDS, cli, outputs, read_back
from xlda.cli.merge_datasets import build_parser, main as merge


@pytest.fixture
def wl(tmp_path):
    return word_level_tokenizer(tmp_path, WORDS)


def _shards(tmp_path, wl, *extra):
    d = tmp_path / "shards"
    assert cli(wl, [write_jsonl(tmp_path / "s0.jsonl", DOCS[:2])], d / "s0", "--append-eod", *extra) == 0
    assert cli(wl, [write_jsonl(tmp_path / "s1.jsonl", DOCS[2:] + ["{bad"])], d / "s1", "--append-eod", *extra) == 0
    return d


def test_two_shards_merge_per_language_in_order(tmp_path, wl):
    d = _shards(tmp_path, wl)
    assert merge(["--input", str(d), "--output-prefix", str(tmp_path / "m" / "x")]) == 0
    assert read_back(tmp_path / "m" / "x_en_text_document")[1] == [[2, 3, 0], [3, 3, 0]]  # s0's, then s1's
    assert read_back(tmp_path / "m" / "x_ko_text_document")[1] == [[4, 5, 2, 0]]
    assert read_back(tmp_path / "m" / "x_ja_text_document")[1] == [[6, 7, 0]]
    m = json.loads((tmp_path / "m" / "x.manifest.json").read_text())
    assert {k: (v["documents"], v["tokens"]) for k, v in m["languages"].items()} == {
        "en": (2, 6), "ja": (1, 3), "ko": (1, 4)}
    assert [s.rsplit("/", 1)[1] for s in m["languages"]["en"]["sources"]] == ["s0.jsonl", "s1.jsonl"]
    assert m["rejected"]["malformed_json"] == 1
    assert [p.rsplit("/", 1)[1] for p in m["merged_from"]] == ["s0.manifest.json", "s1.manifest.json"]
    assert m["tokenizer"] == json.loads((d / "s0.manifest.json").read_text())["tokenizer"]
    assert outputs(tmp_path / "m") == [f"x_{l}_text_document.{e}" for l in ("en", "ja", "ko") for e in ("bin", "idx")]


def test_refuses_shards_of_different_tokenizers(tmp_path, wl, capsys):
    d = _shards(tmp_path, wl)
    other = word_level_tokenizer(tmp_path, WORDS[::-1], name="other.json")
    assert cli(other, [write_jsonl(tmp_path / "s2.jsonl", DOCS[:1])], d / "s2", "--append-eod") == 0
    capsys.readouterr()
    assert merge(["--input", str(d), "--output-prefix", str(tmp_path / "m" / "x")]) == 2
    err = capsys.readouterr().err
    assert "s2.manifest.json was made with tokenizer" in err and "other.json" in err
    assert "datasets of different tokenizers cannot be merged" in err
    assert not (tmp_path / "m").exists() or list((tmp_path / "m").iterdir()) == []


def test_refuses_mismatched_settings_and_stale_files(tmp_path, wl, capsys):
    d = _shards(tmp_path, wl)
    assert cli(wl, [write_jsonl(tmp_path / "s2.jsonl", DOCS[:1])], d / "s2") == 0  # no --append-eod
    assert merge(["--input", str(d / "s0"), str(d / "s2"), "--output-prefix", str(tmp_path / "x")]) == 2
    assert "has --append-eod False but" in capsys.readouterr().err
    assert cli(wl, [tmp_path / "s2.jsonl"], d / "s2", "--append-eod") == 0
    # data files that do not belong to their manifest (s1's en replaced by a 2-document dataset)
    assert cli(wl, [write_jsonl(tmp_path / "b.jsonl", DOCS)], tmp_path / "big" / "b") == 0
    for ext in ("bin", "idx"):
        (d / f"s1_en_text_document.{ext}").write_bytes((tmp_path / "big" / f"b_en_text_document.{ext}").read_bytes())
    # found while merging (the work had started): exit 1, as any failed run
    assert merge(["--input", str(d / "s1"), str(d / "s0.manifest.json"), "--output-prefix", str(tmp_path / "x")]) == 1
    assert "s1_en_text_document holds 2 documents but" in capsys.readouterr().err
    (d / "s0_ko_text_document.idx").unlink()
    assert merge(["--input", str(d / "s0"), str(d / "s2"), "--output-prefix", str(tmp_path / "x")]) == 1
    assert "s0_ko_text_document.idx (listed in" in capsys.readouterr().err
    assert outputs(tmp_path) == []
    assert merge(["--input", str(d / "s1"), "--output-prefix", str(tmp_path / "x")]) == 2
    assert "merging needs at least two" in capsys.readouterr().err
    assert merge(["--input", str(d / "s1"), str(d / "s0"), "--output-prefix", str(d / "s0")]) == 2
    assert "is one of the inputs" in capsys.readouterr().err


def test_help_and_misspelt_flag(capsys):
    assert all(a.help for a in build_parser()._actions)
    with pytest.raises(SystemExit) as e:
        merge(["--inputs", "d", "--output-prefix", "x"])
    assert e.value.code == 2 and "--inputs (did you mean --input?)" in capsys.readouterr().err
