"""The full local pipeline on real text with planted documents of known fate."""
import gzip
import json
from collections import Counter
from pathlib import Path

import pytest

from tests.curate.conftest import ANNEAL, run_local
from tests.curate.planted import LANGS, expected_drops, jaccard, read_output, shingler
from xlda.curate.config import parse_lang_fractions
from xlda.curate.quantile import doc_key, top_k_count


def _by_lang(out: Path, sub: str = "") -> dict[str, list[dict]]:
    return {L: read_output(out / sub / L) for L in LANGS}


def _filtered(out: Path) -> dict[str, list[dict]]:
    return {L: read_output(out / ".work" / "filtered" / L) for L in LANGS}


def test_language_id_and_filter_decisions(planted, curated):
    out, m = curated
    exp = expected_drops(planted)
    for L in LANGS:
        got = Counter(m["languages"][L]["dropped"])
        for reason in ("exact_duplicate", "near_duplicate", "missing_score"):
            got.pop(reason, None)
        want = Counter({k: v for k, v in exp[L].items() if k != "kept"})
        assert got == want, L
        assert m["languages"][L]["identified"] == sum(exp[L].values()) - exp[L]["low_confidence"]
    assert m["unlabelled"] == {"unknown": {"undetected_language": 1}}
    filtered = _filtered(out)
    kept_ids = {r["id"]: L for L, rows in filtered.items() for r in rows}
    for pid, fate in planted.fate.items():
        if fate.startswith("kept:"):
            assert kept_ids.get(pid) == fate[5:], pid
        else:
            assert pid not in kept_ids, pid
    # The Korean document from the English shard is relabelled, its source label kept.
    row = next(r for r in filtered["ko"] if r["id"] == "planted/en/is_ko")
    assert row["lang"] == "ko" and row["source_lang"] == "en" and row["lang_score"] == 1.0
    for L in LANGS:
        assert len(filtered[L]) == exp[L]["kept"]


def test_manifest_names_example_documents_per_drop_reason(planted, curated):
    """Each language's drop_examples hold up to 5 ids per filter reason, each one a document
    that reason did drop, and every reason with a count has its examples."""
    from tests.curate.planted import expected_fates

    _, m = curated
    fates = expected_fates(planted)
    for L in LANGS:
        ex, dropped = m["languages"][L]["drop_examples"], m["languages"][L]["dropped"]
        filter_reasons = {r for r in dropped if r not in ("exact_duplicate", "near_duplicate")}
        assert set(ex) == filter_reasons, L
        for reason, ids in ex.items():
            assert len(ids) == min(5, dropped[reason]), (L, reason)
            assert all(fates[i] == (L, reason) for i in ids), (L, reason, ids)


def test_exact_and_near_duplicates(planted, curated):
    out, m = curated
    final = {r["id"]: r for rows in _by_lang(out).values() for r in rows}
    filtered = _filtered(out)
    # Exact copies: exactly one of each planted group survives.
    for orig, copy, L in planted.exact_copies:
        assert (orig in final) + (copy in final) == 1, (orig, copy)
    for L in LANGS:
        texts = Counter(r["text"] for r in filtered[L])
        assert m["languages"][L]["dropped"].get("exact_duplicate", 0) == sum(n - 1 for n in texts.values())
        assert len({r["text"] for r in read_output(out / L)}) == len(read_output(out / L))
    # Near duplicates: recall on the planted pairs (all at Jaccard >= 0.8).
    assert len(planted.near_pairs) >= 20 and min(j for _, _, j, _ in planted.near_pairs) >= 0.8
    caught = [(o not in final) or (v not in final) for o, v, _, _ in planted.near_pairs]
    assert sum(caught) / len(caught) >= 0.9
    # Precision: every document removed as a near duplicate has a kept document it really
    # resembles (shingle Jaccard >= 0.5 with a document MinHash kept).
    for L in LANGS:
        sh = shingler(L)
        unique = {r["text"]: r for r in filtered[L]}.values()
        removed = [r for r in unique if r["id"] not in final and r["text"] not in
                   {f["text"] for f in final.values()}]
        assert len(removed) == m["languages"][L]["dropped"].get("near_duplicate", 0)
        kept = [f["text"] for f in final.values() if f["lang"] == L]
        true_pos = [r for r in removed if max(jaccard(sh, r["text"], k) for k in kept) >= 0.5]
        assert len(true_pos) / max(1, len(removed)) >= 0.9, L


def test_anneal_top_fraction_is_exact(curated):
    out, m = curated
    fractions = parse_lang_fractions(ANNEAL)
    for L in LANGS:
        rows, ann = read_output(out / L), read_output(out / "anneal" / L)
        k = top_k_count(len(rows), fractions[L])
        assert len(ann) == k == m["languages"][L]["anneal"]["documents"]
        assert m["languages"][L]["anneal"]["of"] == len(rows) == m["languages"][L]["documents"]
        # The same set as a global sort by (score, tie-break) would pick.
        ranked = sorted(rows, key=lambda r: doc_key(r["quality_score"], r["id"], r["text"]),
                        reverse=True)
        assert {r["id"] for r in ann} == {r["id"] for r in ranked[:k]}
        assert all(r["quality_score"] == r["score"] for r in ann)
    assert sorted(p.name for p in out.iterdir() if not p.name.startswith(".")) == \
        ["anneal", "en", "ja", "ko", "manifest.json", "zh"]


def test_parquet_input_and_output_match_jsonl(planted, curated, tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    files = []
    for f in planted.files:
        rows = [json.loads(x) for x in f.read_text(encoding="utf-8").splitlines()]
        p = tmp_path / (f.stem + ".parquet")
        pq.write_table(pa.Table.from_pylist(rows), p, row_group_size=25)  # several row groups
        files.append(p)
    out = tmp_path / "out"
    m = run_local(files, out, score_field="score", anneal_top=parse_lang_fractions(ANNEAL),
                  output_format="parquet")
    ref_out, ref = curated
    for L in LANGS:
        got = {r["id"]: r["text"] for r in read_output(out / L)}
        want = {r["id"]: r["text"] for r in read_output(ref_out / L)}
        assert got == want
        assert m["languages"][L]["dropped"] == ref["languages"][L]["dropped"]
        assert {r["id"] for r in read_output(out / "anneal" / L)} == \
            {r["id"] for r in read_output(ref_out / "anneal" / L)}
    assert all(f.endswith(".parquet") for L in LANGS for f in m["languages"][L]["files"])


@pytest.mark.slow  # ~8 s: tokenizer training + megatron-core imports
def test_curated_shards_feed_preprocessing(curated, tmp_path):
    """The chain's next step: tools/preprocess_data.py reads the curated shards as they are
    (`lang` already set) into one indexed dataset per language (the annealing shards alike)."""
    from tests.data.fixtures import train_test_tokenizer
    from xlda.data.preprocess import PreprocessConfig

    out, m = curated
    tok = train_test_tokenizer(tmp_path, 500, docs_per_lang=20)
    PreprocessConfig(input=[str(out / "[a-z][a-z]" / "*.jsonl.gz")], output_prefix=str(tmp_path / "cur"),
                     tokenizer_type="HuggingFaceTokenizer", tokenizer_model=str(tok),
                     append_eod=True, strict=True, log_interval=0).build().run()
    man = json.loads((tmp_path / "cur.manifest.json").read_text())
    assert {L: e["documents"] for L, e in man["languages"].items()} == \
        {L: m["languages"][L]["documents"] for L in LANGS}
    assert not any(man["rejected"].values())


def test_a_local_run_prints_a_line_per_stage_and_logs_to_files(planted, tmp_path, capfd):
    from tests.curate.conftest import run_local

    out = tmp_path / "out"
    run_local(planted.files[:2], out)
    got = capfd.readouterr()
    stages = [line for line in got.out.splitlines() if line.startswith("[curate] stage ")]
    assert len(stages) >= 5 and stages[-1].startswith(f"[curate] stage {len(stages)}/")
    assert "[curate] all stages done" in got.out
    # datatrove's INFO lines (task starts, stats tables) go to the work dir, not the terminal
    assert "INFO" not in got.err and "SUCCESS" not in got.err, got.err[:2000]
    assert "it/s" not in got.err, got.err[:2000]  # no tqdm bars either
    assert len(got.out.splitlines()) <= len(stages) + 2
    work_logs = list(out.parent.rglob("task_00000.log"))
    assert work_logs and any("Processing done" in p.read_text() for p in work_logs)
    assert any(p.name == "curate.log" for p in out.parent.rglob("curate.log"))
