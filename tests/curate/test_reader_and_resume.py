"""Bad input (counted per reason with file:line, --strict fails, nothing published) and
resumption after a killed task."""
import gzip
import json
import os
import shutil

import pytest

from tests.curate.conftest import ANNEAL, run_local
from tests.curate.planted import CLEAN, LANGS, read_output
from xlda.curate.config import CurateError, parse_lang_fractions
from xlda.curate.reader import ShardReader


def _bad_shard(tmp_path):
    good = [{"id": f"g{i}", "text": CLEAN["en"] + f" Item {i}."} for i in range(3)]
    lines = [json.dumps(good[0]).encode(),
             b'{"id": "broken", "text": ',                       # line 2: malformed_json
             json.dumps({"id": "nt", "body": "x"}).encode(),      # line 3: missing_text_key
             json.dumps(good[1]).encode(),
             b'{"id": "bad-utf8", "text": "\xff\xfe"}',           # line 5: invalid_utf8
             json.dumps({"id": "num", "text": 42}).encode(),      # line 6: text_not_string
             json.dumps({"id": "ws", "text": "  \n "}).encode(),  # line 7: empty_document
             b"[1, 2]",                                           # line 8: not_an_object
             b"",                                                 # blank lines are skipped
             json.dumps(good[2]).encode()]
    p = tmp_path / "bad.jsonl.gz"
    with gzip.open(p, "wb") as f:
        f.write(b"\n".join(lines) + b"\n")
    return p


def test_reader_counts_every_reject_with_file_line(tmp_path):
    p = _bad_shard(tmp_path)
    r = ShardReader(files=[str(p)], report_dir=str(tmp_path / "rep"))
    docs = list(r.run(None, 0, 1))
    assert [d.id for d in docs] == ["g0", "g1", "g2"]
    rep = json.loads((tmp_path / "rep" / "00000.json").read_text())
    assert rep["counts"]["all"] == {"malformed_json": 1, "missing_text_key": 1, "invalid_utf8": 1,
                                    "text_not_string": 1, "empty_document": 1, "not_an_object": 1}
    where = {k: v[0].split(": ")[0] for k, v in rep["examples"].items()}
    assert where == {"malformed_json": f"{p}:2", "missing_text_key": f"{p}:3",
                     "invalid_utf8": f"{p}:5", "text_not_string": f"{p}:6",
                     "empty_document": f"{p}:7", "not_an_object": f"{p}:8"}


def test_parquet_rejects_name_the_row_group(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    rows = [{"id": str(i), "text": None if i == 5 else f"text {i}"} for i in range(8)]
    p = tmp_path / "x.parquet"
    pq.write_table(pa.Table.from_pylist(rows), p, row_group_size=3)
    r = ShardReader(files=[str(p)], report_dir=str(tmp_path / "rep"))
    assert len(list(r.run(None, 0, 1))) == 7
    rep = json.loads((tmp_path / "rep" / "00000.json").read_text())
    assert rep["examples"]["text_not_string"][0].startswith(f"{p}:row-group 1:row 2: ")


def test_strict_fails_and_publishes_nothing(tmp_path):
    p = _bad_shard(tmp_path)
    out = tmp_path / "out"
    with pytest.raises(CurateError, match=rf"{p}:2: malformed_json"):
        run_local([p], out, strict=True, languages=("en",))
    assert not (out / "manifest.json").exists() and not (out / "en").exists()
    m = run_local([p], tmp_path / "lenient", languages=("en",))
    assert m["rejected"] == {"malformed_json": 1, "missing_text_key": 1, "invalid_utf8": 1,
                             "text_not_string": 1, "empty_document": 1, "not_an_object": 1}
    assert m["rejected_examples"]["malformed_json"][0].startswith(f"{p}:2: ")
    # g1 and g2 differ from g0 by one word: MinHash near-duplicates of it.
    assert sorted(r["id"] for r in read_output(tmp_path / "lenient" / "en")) == ["g0"]
    assert m["languages"]["en"]["dropped"] == {"near_duplicate": 2}


def test_rerun_after_a_killed_task_redoes_only_that_task(planted, curated, tmp_path):
    """A task killed mid-way leaves no completion marker and a partial output file; the rerun
    (same command) skips the completed tasks and ends with the same result as a clean run."""
    from xlda.curate.config import CurateConfig

    out = tmp_path / "out"
    cfg = CurateConfig(inputs=[str(f) for f in planted.files], output_dir=str(out), workers=1,
                       score_field="score", anneal_top=parse_lang_fractions(ANNEAL))
    first = cfg.build().executors()[0]
    assert first.tasks == 4
    first.run()  # the read/filter stage only; then task 1 "dies" after writing half its file
    work = out / ".work"
    (work / "logs" / "filter" / "completions" / "00001").unlink()
    victim = sorted((work / "filtered").glob("*/00001.jsonl.gz"))
    assert victim
    for f in victim:
        f.write_bytes(f.read_bytes()[: f.stat().st_size // 2])
    survivors = {f: f.stat().st_mtime_ns for f in (work / "filtered").glob("*/0000[023].jsonl.gz")}
    m = CurateConfig(**{**cfg.__dict__}).build().run()
    assert {f: f.stat().st_mtime_ns for f in survivors} == survivors  # not redone
    ref_out, ref = curated
    assert m["languages"] == json.loads(json.dumps(ref["languages"]).replace(str(ref_out), str(out)))
    for L in LANGS:
        assert read_output(out / L) == read_output(ref_out / L)
        assert read_output(out / "anneal" / L) == read_output(ref_out / "anneal" / L)


def test_rerun_with_other_settings_is_refused(curated, planted):
    out, m = curated
    assert run_local(planted.files, out, score_field="score",
                     anneal_top=parse_lang_fractions(ANNEAL)) == m  # complete: nothing to do
    with pytest.raises(CurateError, match=r"other settings \(anneal_top differ\)"):
        run_local(planted.files, out, score_field="score", anneal_top=parse_lang_fractions("en=0.5"))
