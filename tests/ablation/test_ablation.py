"""The XLDA mask ablation: held-out split, run plan (mask is the only difference), evaluation
batches, aggregation/CSV/PNG, and an end-to-end micro run."""
from __future__ import annotations

import math
import struct

import numpy as np
import pytest
import torch

from tests.data.fixtures import corpus_docs, train_test_tokenizer
from xlda.ablation import report
from xlda.ablation.corpus import LANGS, page_key, split_pages
from xlda.ablation.runs import (MASKS, AblationConfig, heldout_dataset, init_checksum,
                                isolated_batches, loss_sums, prepare_heldout, train_and_eval)

SEQ = 64


def _doc(lang, page, text="x"):
    loc = {"en": "en-US", "zh": "zh-CN"}.get(lang, lang)
    return {"id": f"lo/{loc}/text/{page}.html", "lang": lang, "text": text}


# -- held-out split ---------------------------------------------------------------------------
def test_page_key_strips_locale_and_rejects_other_ids():
    assert page_key("lo/ko/text/sbasic/a.html") == "text/sbasic/a.html"
    assert page_key("lo/en-US/text/sbasic/a.html") == "text/sbasic/a.html"
    with pytest.raises(ValueError, match="lo/<locale>/<path>"):
        page_key("debian/faq/1")


def test_split_pages_holds_out_the_same_pages_in_every_language():
    docs = {"en": [_doc("en", p) for p in "abcdefgh"],
            "ko": [_doc("ko", p) for p in "abcdefxy"]}  # g,h only in en; x,y only in ko
    sp = split_pages(docs, heldout_pages=3, train_docs={"en": 100, "ko": 100})
    held = set(sp.heldout_pages)
    assert len(held) == 3
    keys = {page_key(d["id"]) for d in sp.heldout["en"]}
    assert keys == {page_key(d["id"]) for d in sp.heldout["ko"]} == held
    assert held <= {f"text/{p}.html" for p in "abcdef"}  # only pages every language has
    for lang in docs:
        train_keys = {page_key(d["id"]) for d in sp.train[lang]}
        assert not train_keys & held
        assert len(sp.train[lang]) == 8 - 3  # everything else trains
    # deterministic and independent of file order
    rev = {l: ds[::-1] for l, ds in docs.items()}
    assert split_pages(rev, 3, {"en": 100, "ko": 100}).heldout_pages == sp.heldout_pages


def test_split_pages_caps_training_docs_and_rejects_too_many_heldout():
    docs = {"en": [_doc("en", p) for p in "abcdef"], "ko": [_doc("ko", p) for p in "abcdef"]}
    sp = split_pages(docs, 2, {"en": 3, "ko": 1})
    assert [len(sp.train["en"]), len(sp.train["ko"])] == [3, 1]
    assert sp.train["en"] == [d for d in docs["en"] if page_key(d["id"]) not in
                              set(sp.heldout_pages)][:3]  # file order kept
    with pytest.raises(ValueError, match="--heldout-pages"):
        split_pages(docs, 7, {"en": 3, "ko": 3})


# -- a small prepared data set (in-process, no subprocess tools) ---------------------------------
@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory, corpus):
    from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

    from xlda.data.lang_id import ScriptLangID
    from xlda.data.tokenizer import build_tokenizer

    tmp = tmp_path_factory.mktemp("abl")
    tok_path = train_test_tokenizer(tmp, vocab_size=600, corpus_dir=corpus, docs_per_lang=20)
    tok = build_tokenizer("HuggingFaceTokenizer", tok_path)
    docs = {}
    for lang in LANGS:  # the first 150 docs, script-filtered like read_docs does
        docs[lang] = [d for d in corpus_docs(corpus, lang, 150) if ScriptLangID().detect(d["text"]) == lang]
    sp = split_pages(docs, 6, {l: 20 for l in LANGS})
    out = {"tokenizer": str(tok_path), "heldout_pages": sp.heldout_pages, "train": {}, "heldout": {}}
    for name, part in (("train", sp.train), ("heldout", sp.heldout)):
        for lang in LANGS:
            prefix = str(tmp / f"{name}_{lang}_text_document")
            b = IndexedDatasetBuilder(prefix + ".bin", dtype=np.uint16)
            for d in part[lang]:
                ids = tok.tokenize(d["text"])[:400] + [tok.eod]
                b.add_item(torch.tensor(ids, dtype=torch.int64))
                b.end_document()
            b.finalize(prefix + ".idx")
            out[name][lang] = prefix
    return out


def _ablation(data, **kw):
    base = dict(data=data, seeds=(1, 2), train_iters=2, seq_length=SEQ, micro_batch_size=2,
                global_batch_size=2, eval_samples=4, isolated_docs=3)
    base.update(kw)
    return AblationConfig(**base)


def test_plan_mask_is_the_only_difference(tiny_data):
    from xlda.training.batches import build_run_datasets

    plan = _ablation(tiny_data, train_iters=6).build()
    assert [(s.mask, s.seed) for s in plan] == [(m, s) for s in (1, 2) for m in MASKS]
    cfgs = {(s.mask, s.seed): s.run_config() for s in plan}
    for seed in (1, 2):
        dicts = [cfgs[(m, seed)].to_dict() for m in MASKS]
        assert [d["model"].pop("attention_mask_type") for d in dicts] == list(MASKS)
        assert dicts[0] == dicts[1] == dicts[2]
    samples = {}
    for key, cfg in cfgs.items():
        ds = build_run_datasets(cfg, log=lambda *a: None).train
        assert len(ds) >= 4
        samples[key] = torch.stack([ds[i]["tokens"] for i in range(len(ds))])
    for seed in (1, 2):
        assert torch.equal(samples[("xlda", seed)], samples[("document", seed)])
        assert torch.equal(samples[("xlda", seed)], samples[("causal", seed)])
    assert not torch.equal(samples[("xlda", 1)], samples[("xlda", 2)])


def test_plan_rejects_unknown_mask_and_size(tiny_data):
    with pytest.raises(ValueError, match="unknown mask"):
        _ablation(tiny_data, masks=("xlda", "full")).build()
    with pytest.raises(ValueError, match="--size"):
        _ablation(tiny_data, size="huge").build()


def test_heldout_packed_set_is_fixed_and_multilingual(tiny_data):
    a = heldout_dataset(tiny_data, SEQ, 5)
    b = heldout_dataset(tiny_data, SEQ, 5)
    assert len(a) == 5
    for i in range(5):
        assert torch.equal(a[i]["tokens"], b[i]["tokens"])
        assert len(torch.unique(a[i]["lang_ids"])) >= 2


def test_isolated_batches_hold_one_document_each(tiny_data):
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    eod = 0
    out = isolated_batches(tiny_data, SEQ, max_docs=3, eod=eod, batch=2)
    assert list(out) == list(LANGS)
    for li, lang in enumerate(LANGS):
        ds = IndexedDataset(tiny_data["heldout"][lang])
        b = torch.cat([x["tokens"] for x in out[lang]])
        lab = torch.cat([x["labels"] for x in out[lang]])
        m = torch.cat([x["loss_mask"] for x in out[lang]])
        assert b.shape == (3, SEQ) and [x["tokens"].shape[0] for x in out[lang]] == [2, 1]
        for r in range(3):
            doc = torch.from_numpy(np.asarray(ds[r], dtype=np.int64))
            k = min(len(doc) - 1, SEQ)
            assert torch.equal(b[r, :k], doc[:k]) and torch.equal(lab[r, :k], doc[1:k + 1])
            assert m[r].sum() == k and m[r, k:].sum() == 0
        assert all((x["doc_ids"] == 0).all() and (x["lang_ids"] == li).all() for x in out[lang])


# -- end to end --------------------------------------------------------------------------------
def test_micro_run_same_init_and_data_and_isolated_metric_is_mask_free(tiny_data):
    """1 seed x 3 masks, 2 iterations: identical init and first sample across masks; the
    single-document metric does not depend on the mask; the packed one does."""
    from xlda.training.loop import Trainer

    a = _ablation(tiny_data, seeds=(1,))
    held = prepare_heldout(a)
    results = [train_and_eval(spec, held, log=lambda *x: None) for spec in a.build()]
    facts = [r["facts"] for r in results]
    assert len({f["init_checksum"] for f in facts}) == 1
    assert len({f["first_sample_sum"] for f in facts}) == 1
    assert all(f["iterations"] == 2 and math.isfinite(f["last_loss"]) for f in facts)
    rows = [row for r in results for row in r["rows"]]
    # per run: packed x 3 eval masks x 4 languages + isolated x 4 languages
    assert len(rows) == 3 * (3 * 4 + 4)
    summary = report.aggregate(rows)
    assert {(s["metric"], s["mask"]) for s in summary} == {(m, k) for m in report.METRICS
                                                           for k in MASKS}
    assert [s["lang"] for s in summary[:4]] == ["ko", "en", "ja", "zh"]
    # one trained model under every mask: isolated identical, packed not
    trainer = Trainer(a.build()[0].run_config(), print_fn=lambda *x: None).setup()
    model = trainer.model_chunks[0]
    iso = [loss_sums(model, held["isolated"]["ko"], m, 4)[0][1] for m in MASKS]
    assert iso[0] == pytest.approx(iso[1], rel=1e-6) == pytest.approx(iso[2], rel=1e-6)
    packed = [loss_sums(model, held["packed"], m, 4)[0].sum() for m in MASKS]
    assert packed[0] != pytest.approx(packed[1], rel=1e-9)
    assert init_checksum(model) == pytest.approx(facts[0]["init_checksum"], rel=1e-12)


# -- aggregation and outputs -------------------------------------------------------------------
def _rows():
    rows = []
    vals = {("xlda", "ko"): [1.0, 2.0, 4.0], ("xlda", "en"): [3.0, 3.0, 3.0],
            ("causal", "ko"): [2.0, 2.5, 3.0], ("causal", "en"): [1.5, 0.5, 1.0]}
    for (mask, lang), xs in vals.items():
        for seed, x in enumerate(xs, 1):
            rows.append({"mask": mask, "seed": seed, "metric": "packed", "eval_mask": mask,
                         "lang": lang, "loss": x, "tokens": 10})
            # a cross-mask evaluation: kept in the CSV, not in the summary
            rows.append({"mask": mask, "seed": seed, "metric": "packed", "eval_mask": "document",
                         "lang": lang, "loss": 99.0, "tokens": 10})
    rows.append({"mask": "xlda", "seed": 1, "metric": "isolated", "eval_mask": "xlda",
                 "lang": "ko", "loss": 5.0, "tokens": 3})
    return rows


def test_mean_std_exact():
    assert report.mean_std([1.0, 2.0, 4.0]) == (pytest.approx(7 / 3), pytest.approx(math.sqrt(7 / 3)))
    assert report.mean_std([5.0]) == (5.0, 0.0)
    with pytest.raises(ValueError):
        report.mean_std([])


def test_aggregate_exact_own_mask_korean_first():
    s = report.aggregate(_rows())
    key = [(x["metric"], x["mask"], x["lang"]) for x in s]
    assert key == [("packed", "xlda", "ko"), ("packed", "xlda", "en"), ("packed", "causal", "ko"),
                   ("packed", "causal", "en"), ("isolated", "xlda", "ko")]
    xk = s[0]
    assert (xk["n"], xk["min"], xk["max"]) == (3, 1.0, 4.0)
    assert xk["mean"] == pytest.approx(7 / 3) and xk["std"] == pytest.approx(math.sqrt(7 / 3))
    assert (s[1]["mean"], s[1]["std"]) == (3.0, 0.0)
    assert s[2]["mean"] == pytest.approx(2.5) and s[2]["std"] == pytest.approx(0.5)
    assert s[3]["mean"] == pytest.approx(1.0) and s[3]["std"] == pytest.approx(0.5)
    assert (s[4]["n"], s[4]["mean"], s[4]["std"]) == (1, 5.0, 0.0)


def test_csv_round_trip_and_markdown(tmp_path):
    rows = _rows()
    p = report.write_csv(rows, tmp_path / "sub" / "runs.csv", report.RUN_FIELDS)
    back = report.read_csv(p)
    assert len(back) == len(rows)
    assert back[0] == {"mask": "xlda", "seed": "1", "metric": "packed", "eval_mask": "xlda",
                       "lang": "ko", "loss": "1.000000", "tokens": "10"}
    # aggregation from the CSV gives the same summary as from the rows
    assert [x["mean"] for x in report.aggregate(back)] == pytest.approx(
        [x["mean"] for x in report.aggregate(rows)])
    s = report.aggregate(rows)
    report.write_csv(s, tmp_path / "summary.csv", report.SUMMARY_FIELDS)
    assert (tmp_path / "summary.csv").read_text().splitlines()[:2] == [
        "metric,mask,lang,n,mean,std,min,max",
        "packed,xlda,ko,3,2.333333,1.527525,1.000000,4.000000"]
    assert report.markdown_table(s, "packed") == (
        "| mask | ko | en |\n|---|---|---|\n"
        "| xlda | 2.3333 ± 1.5275 [1.0000, 4.0000] | 3.0000 ± 0.0000 [3.0000, 3.0000] |\n"
        "| causal | 2.5000 ± 0.5000 [2.0000, 3.0000] | 1.0000 ± 0.5000 [0.5000, 1.5000] |")


def test_plot_writes_a_png(tmp_path):
    rows = _rows()
    p = report.plot(report.aggregate(rows), rows, tmp_path / "a.png")
    head = p.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = struct.unpack(">II", head[16:24])
    assert (w, h) == (1200, 400)  # two panels, 12x4 in at 100 dpi


# -- the command -------------------------------------------------------------------------------
def test_cli_args_and_mix_errors():
    from xlda.ablation.cli import parse_args

    a = parse_args(["--seeds", "2", "--mix", "en=0.8,ko=0.2", "--size", "small"])
    assert (a.seeds, a.mix, a.size, a.train_iters) == (2, {"en": 0.8, "ko": 0.2}, "small", 300)
    with pytest.raises(SystemExit):
        parse_args(["--mix", "en:0.8"])


@pytest.mark.slow
def test_command_end_to_end_on_the_real_tools(tmp_path, corpus, capsys):
    """The real path (tools/build_tokenizer.py, tools/preprocess_data.py in subprocesses): held-out
    pages absent from training in every language; outputs written; cached data reused."""
    from xlda.ablation.cli import parse_args, run

    argv = ["--workdir", str(tmp_path), "--seeds", "1", "--train-iters", "2", "--docs-per-lang",
            "30", "--en-docs", "40", "--heldout-pages", "6", "--eval-samples", "4",
            "--isolated-docs", "3", "--seq-length", "64", "--micro-batch-size", "2",
            "--global-batch-size", "2"]
    out = run(parse_args(argv))
    data = next(tmp_path.glob("data_*/prepared.json"))
    import json

    d = json.loads(data.read_text())
    held = set(d["heldout_pages"])
    assert len(held) == 6
    for lang in LANGS:
        assert {page_key(i) for i in d["heldout_ids"][lang]} == held
        assert not {page_key(i) for i in d["train_ids"][lang]} & held
    for name in ("runs.csv", "summary.csv", "results.md", "ablation.png"):
        assert (out["out"] / name).stat().st_size > 0
    assert len(report.read_csv(out["out"] / "summary.csv")) == 2 * 3 * 4
    capsys.readouterr()
    run(parse_args(argv))
    log = capsys.readouterr().out
    assert "reusing prepared data" in log and log.count("reusing run_") == 3


def test_cross_mask_table_exact():
    rows = _rows()
    assert report.cross_mask_table(rows, "en") == (
        "| trained \\ evaluated | xlda | document | causal |\n|---|---|---|---|\n"
        "| xlda | 3.0000 ± 0.0000 | 99.0000 ± 0.0000 | - |\n"
        "| causal | - | 99.0000 ± 0.0000 | 1.0000 ± 0.5000 |")


def test_read_docs_keeps_only_documents_in_their_labelled_script(tmp_path):
    from tests.data.fixtures import write_jsonl
    from xlda.ablation.corpus import read_docs

    recs = [_doc("ko", "a", "한국어 도움말 페이지입니다"), _doc("ko", "b", "Untranslated English page"),
            _doc("en", "c", "An English page")]
    p = write_jsonl(tmp_path / "ko.jsonl.gz", recs, compression="gz")
    assert [d["id"] for d in read_docs(p, "ko")] == ["lo/ko/text/a.html"]
    bad = write_jsonl(tmp_path / "bad.jsonl.gz", [recs[0], "{not json"], compression="gz")
    with pytest.raises(ValueError, match=r"bad.jsonl.gz:2: not JSON"):
        read_docs(bad, "ko")


def test_paired_differences_exact():
    d = report.paired_differences(_rows())
    # xlda - causal per seed: ko 1-2, 2-2.5, 4-3 = -1, -0.5, +1; en 3-1.5, 3-0.5, 3-1 = 1.5, 2.5, 2
    assert [(x["mask"], x["lang"], x["n"], x["wins"]) for x in d] == [
        ("xlda", "ko", 3, 2), ("xlda", "en", 3, 0)]
    assert d[0]["mean"] == pytest.approx(-1 / 6)
    assert d[0]["std"] == pytest.approx(math.sqrt(((-5 / 6) ** 2 + (-1 / 3) ** 2 + (7 / 6) ** 2) / 2))
    assert (d[1]["mean"], d[1]["std"]) == (pytest.approx(2.0), pytest.approx(0.5))
    assert report.paired_table(d) == (
        "| mask - causal | ko | en |\n|---|---|---|\n"
        "| xlda | -0.1667 ± 1.0408 (2/3) | +2.0000 ± 0.5000 (0/3) |")
    assert report.paired_differences(_rows(), "isolated") == []  # no causal isolated rows
