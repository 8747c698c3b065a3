"""The ablation's runs: the plan (A and B differ only in the mask and see identical batches, A and
C only in the packing), the held-out batches, an end-to-end micro run with the probe, the
induction test and the measured affinity, and the command."""
import json
import math

import numpy as np
import pytest
import torch

from xlda.ablation import report
from xlda.ablation.corpus import LANGS
from xlda.ablation.runs import (ARMS, MASKS, AblationConfig, heldout_dataset, heldout_docs,
                                index_affinity, init_checksum, isolated_batches, loss_sums,
                                prepare_heldout, train_and_eval)

SEQ = 64
EVEN = {"en": 0.25, "ko": 0.25, "ja": 0.25, "zh": 0.25}  # band room for pairs in small indexes


def _ablation(data, **kw):
    base = dict(data=data, seeds=(1, 2), train_iters=2, size="tiny", seq_length=SEQ,
                micro_batch_size=2, global_batch_size=2, eval_samples=4, isolated_docs=3)
    base.update(kw)
    return AblationConfig(**base)


def test_plan_arms_differ_only_where_they_must(tiny_data):
    """A and B: the same run but for the mask, so the same packing index and batches; A and C:
    the same but for the packer's affinity, so other batches; seeds change the data."""
    from xlda.training.batches import build_run_datasets

    plan = _ablation(tiny_data, train_iters=40, mix=EVEN).build()
    assert [(s.arm, s.seed) for s in plan] == [(a, s) for s in (1, 2) for a in "ABC"]
    assert [(s.mask, s.affinity_p) for s in plan[:3]] == [("xlda", 1.0), ("document", 1.0),
                                                          ("xlda", 0.0)]
    cfgs = {(s.arm, s.seed): s.run_config() for s in plan}
    for seed in (1, 2):
        a, b, c = (cfgs[(k, seed)].to_dict() for k in "ABC")
        assert (a["model"].pop("attention_mask_type"), b["model"].pop("attention_mask_type")) == \
            ("xlda", "document")
        assert a == b
        assert (a["data"].pop("xlda_affinity_p"), a["data"].pop("xlda_affinity_key")) == (1.0, "group")
        assert (c["data"].pop("xlda_affinity_p"), c["data"].pop("xlda_affinity_key")) == (0.0, None)
        c["model"].pop("attention_mask_type")
        assert a == c
    samples, stats = {}, {}
    for key, cfg in cfgs.items():
        ds = build_run_datasets(cfg, log=lambda *a: None).train
        assert len(ds) >= 4
        samples[key] = torch.stack([ds[i]["tokens"] for i in range(len(ds))])
        stats[key] = ds.index.stats
    for seed in (1, 2):
        assert torch.equal(samples[("A", seed)], samples[("B", seed)])
        assert stats[("A", seed)]["affinity_swaps"] > 0  # affinity placed pairs...
        assert not torch.equal(samples[("A", seed)], samples[("C", seed)])  # ...so C differs
        assert "affinity_p" not in stats[("C", seed)]  # C is today's packing
    assert not torch.equal(samples[("A", 1)], samples[("A", 2)])


def test_measured_affinity_of_a_run_index_matches_the_build(tiny_data):
    """index_affinity (every arm's report, C's too) measures on the index what the build
    measured for an affinity index, from its own reading of the groups."""
    from xlda.training.batches import build_run_datasets

    for arm in "AC":
        spec = next(s for s in _ablation(tiny_data, train_iters=40, mix=EVEN).build() if s.arm == arm)
        ds = build_run_datasets(spec.run_config(), log=lambda *a: None).train
        got = index_affinity(ds, "group", SEQ)
        assert set(got) == {"affinity_pairs", "documents_started", "affinity_rate",
                            "affinity_windows"}
        if arm == "A":
            assert got == {k: ds.index.stats[k] for k in got}
            assert got["affinity_pairs"] > 0
        assert 0 <= got["affinity_pairs"] <= got["documents_started"]
    assert index_affinity(ds, None, SEQ) is None


def test_plan_rejects_unknown_arm_size_p_and_affinity_without_groups(tiny_data):
    with pytest.raises(ValueError, match="unknown arm"):
        _ablation(tiny_data, arms=("A", "Z")).build()
    with pytest.raises(ValueError, match="--size"):
        _ablation(tiny_data, size="huge")
    for p in (0.0, 1.5):
        with pytest.raises(ValueError, match="--affinity-p"):
            _ablation(tiny_data, affinity_p=p).build()
    with pytest.raises(ValueError, match="--group-key"):
        _ablation({**tiny_data, "group_field": None}).build()
    assert len(_ablation({**tiny_data, "group_field": None}, arms=("C",)).build()) == 2


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
    out = isolated_batches(heldout_docs(tiny_data), SEQ, max_docs=3, eod=eod, batch=2)
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
def test_micro_run_same_init_and_data_isolated_mask_free_probe_zero_under_document(tiny_data):
    """1 seed x arms A, B, C, D, 2 iterations: identical init across arms, identical batches for
    the affinity arms; the single-document metric does not depend on the mask, the packed one
    does; the probe's transfer is exactly 0 for the document-mask model (B) and not for the
    others; every run reports its induction test and measured affinity."""
    from xlda.ablation.probe import probe_losses
    from xlda.training.loop import Trainer

    a = _ablation(tiny_data, seeds=(1,), arms=tuple(ARMS))
    held = prepare_heldout(a)
    n_items = held["probe_items"]
    assert set(n_items) == {"ko", "ja", "zh"} and min(n_items.values()) >= 6
    results = [train_and_eval(spec, held, log=lambda *x: None) for spec in a.build()]
    facts = {r["facts"]["arm"]: r["facts"] for r in results}
    assert len({f["init_checksum"] for f in facts.values()}) == 1
    same = {(f["first_sample_sum"], f["samples_64_sum"]) for k, f in facts.items() if k != "C"}
    assert len(same) == 1  # A, B, D: one index
    assert all(f["iterations"] == 2 and math.isfinite(f["last_loss"]) for f in facts.values())
    for f in facts.values():
        assert set(f["induction"]) == {"random", "text"}
        assert all(math.isclose(v["gain"], v["control"] - v["repeat"])
                   for v in f["induction"].values())
        assert f["affinity"]["documents_started"] > 0
    rows = [row for r in results for row in r["rows"]]
    assert {r["arm"] for r in rows} == set("ABCD")
    # per run: packed x 3 eval masks x 4 languages + isolated x 4 + probe 3 conditions x 3
    # (plus the subsets, where a subset has tokens)
    assert len([r for r in rows if "@" not in r["metric"]]) == 4 * (3 * 4 + 4 + 3 * 3)
    assert {r["metric"].partition("@")[2] for r in rows} == {"", "native", "copyable"}
    transfer = report.values(rows, "transfer")
    assert {k: v for k, v in transfer.items() if k[0] == "B"} == {
        ("B", 1, l): 0.0 for l in ("ko", "ja", "zh")}
    for r in results:  # per document: the same under the document mask, not under the others
        items = r["probe_items"]
        for lang in ("ko", "ja", "zh"):
            same = items[f"{lang}/translation"] == items[f"{lang}/unrelated"]
            assert same == (r["facts"]["mask"] == "document"), (r["facts"]["name"], lang)
    assert [len(results[0]["probe_items"][f"ko/{c}"]) for c in ("translation", "none")] == \
        [n_items["ko"]] * 2
    # one trained model under every mask: isolated identical, packed not; probe per document
    trainer = Trainer(a.build()[0].run_config(), print_fn=lambda *x: None).setup()
    model = trainer.model_chunks[0]
    iso = [loss_sums(model, held["isolated"]["ko"], m, 4)[0][1] for m in MASKS]
    assert iso[0] == pytest.approx(iso[1], rel=1e-6) == pytest.approx(iso[2], rel=1e-6)
    packed = [loss_sums(model, held["packed"], m, 4)[0].sum() for m in MASKS]
    assert packed[0] != pytest.approx(packed[1], rel=1e-9)
    doc = probe_losses(model, held["probe"], "document")
    for lang in ("ko", "ja", "zh"):  # per document, not just on average
        assert np.array_equal(doc[(lang, "translation")][0], doc[(lang, "unrelated")][0])
        np.testing.assert_allclose(doc[(lang, "none")][0], doc[(lang, "translation")][0],
                                   rtol=1e-5)  # shifted positions: RoPE is relative
    xl = probe_losses(model, held["probe"], "xlda")
    assert not np.array_equal(xl[("ko", "translation")][0], xl[("ko", "unrelated")][0])
    assert init_checksum(model) == pytest.approx(facts["A"]["init_checksum"], rel=1e-12)


def test_cli_defaults_presets_and_errors():
    from xlda.ablation.cli import LIBREOFFICE, parse_args
    from xlda.ablation.runs import MIXES, SIZES

    a = parse_args([])
    assert (a.seeds, a.size, a.mix, a.heldout) == (5, "tiny", MIXES["7b"], 128)
    assert (a.arms, a.affinity_p, a.chunk_chars, a.near_dup) == ("A,B,C", 1.0, 200, 0.8)
    assert a.mix == {"en": 0.85, "ko": 0.10, "ja": 0.025, "zh": 0.025}
    assert (a.group_key, a.group_pattern) == (LIBREOFFICE["group_key"], LIBREOFFICE["group_pattern"])
    assert sorted(a.inputs) == sorted(LANGS)
    a = parse_args(["--mix", "uniform", "--input", "en=a.jsonl", "--input", "en=b.jsonl",
                    "--input", "ko=c.jsonl", "--input", "ja=d.jsonl", "--input", "zh=e.jsonl",
                    "--group-key", "page"])
    assert a.mix == {"en": 0.7, "ko": 0.1, "ja": 0.1, "zh": 0.1}
    assert a.inputs == {"en": ["a.jsonl", "b.jsonl"], "ko": ["c.jsonl"], "ja": ["d.jsonl"],
                        "zh": ["e.jsonl"]}
    assert (a.group_key, a.group_pattern) == ("page", None)  # no LibreOffice preset with --input
    assert parse_args(["--mix", "en=0.8,ko=0.1,ja=0.05,zh=0.05"]).mix["ja"] == 0.05
    for bad in (["--mix", "en:0.8"], ["--input", "ko"], ["--size", "huge"], ["--seeds", "1"],
                ["--heldout", "0"], ["--arms", "A,B"], ["--arms", "A,B,C,Z"], ["--arms", "A,B,C,C"],
                ["--affinity-p", "0"], ["--affinity-p", "1.5"], ["--near-dup", "2"],
                ["--chunk-chars", "-1"],
                ["--input", "en=a", "--input", "ko=b", "--mix", "en=0.9,ko=0.1"],  # no group key
                ["--mix", "en=0.9,ko=0.1"],  # ja and zh inputs without a share
                ["--input", "en=a", "--input", "ko=b"],  # the 7b mix names ja and zh too
                ["--input", "en=a", "--input", "ko=b", "--mix", "en=1,ko=0", "--corpus", "d"]):
        with pytest.raises(SystemExit):
            parse_args(bad)
    ok = parse_args(["--input", "en=a", "--input", "ko=b", "--mix", "en=0.9,ko=0.1",
                     "--group-key", "page"])
    assert ok.inputs == {"en": ["a"], "ko": ["b"]} and ok.group_key == "page"
    assert SIZES["gpu"].seq_length == 1024 and SIZES["gpu"].bf16


def test_size_presets_resolve_and_flags_override(tiny_data):
    a = AblationConfig(data=tiny_data)
    assert (a.size, a.train_iters, a.seq_length, a.global_batch_size) == ("tiny", 2000, 256, 8)
    assert (a.arms, a.seeds, a.affinity_p) == (("A", "B", "C"), (1, 2, 3, 4, 5), 1.0)
    cfg = a.build()[0].run_config()
    assert (cfg.model.num_layers, cfg.model.hidden_size, cfg.training.train_iters) == (2, 128, 2000)
    assert cfg.data.xlda_beta == {"en": 0.85, "ko": 0.10, "ja": 0.025, "zh": 0.025}
    assert cfg.data.xlda_alpha == 0.0 and cfg.data.split == "100,0,0"
    g = AblationConfig(data=tiny_data, size="gpu", train_iters=7).build()[0].run_config()
    assert (g.model.num_layers, g.model.seq_length, g.data.seq_length, g.model.bf16,
            g.training.train_iters) == (8, 1024, 1024, True, 7)


@pytest.mark.slow
def test_command_end_to_end_on_the_real_tools(tmp_path, corpus, capsys):
    """The real path (tools/build_tokenizer.py, tools/preprocess_data.py in subprocesses) on
    another corpus layout: per-language files with a ``page`` field (no LibreOffice ids), held-out
    pages absent from training in every language; outputs written; cached data and runs reused."""
    from tests.data.fixtures import corpus_docs, write_jsonl
    from xlda.ablation.cli import parse_args, run

    inputs = []
    for lang in LANGS:  # re-key the corpus: page = a number per page path, shared by translations
        recs = [{"page": d["id"].split("/", 2)[2], "body": d["text"]}
                for d in corpus_docs(corpus, lang, 60)]
        inputs += ["--input", f"{lang}={write_jsonl(tmp_path / f'{lang}.jsonl', recs)}"]
    argv = ["--workdir", str(tmp_path / "w"), "--seeds", "2", "--train-iters", "2", "--size",
            "tiny", "--heldout", "6", "--eval-samples", "4", "--isolated-docs", "3",
            "--seq-length", "64", "--micro-batch-size", "2", "--global-batch-size", "2",
            "--text-key", "body", "--group-key", "page", "--results-md",
            str(tmp_path / "doc" / "RESULTS.md"), *inputs]
    out = run(parse_args(argv))
    d = json.loads(next((tmp_path / "w").glob("data_*/prepared.json")).read_text())
    page = lambda g: g.rsplit("#", 1)[0]  # noqa: E731 - a chunk's group: <page>#<k>
    assert d["aligned"] and d["pages"]["heldout"] == {l: 6 for l in LANGS}
    held = {page(g) for gs in d["heldout_groups"].values() for g in gs}
    assert len(held) == 6
    for lang in LANGS:  # no chunk of a held-out page trains, in any language
        assert not {page(g) for g in d["train_groups"][lang]} & held
    assert d["chunk_chars"] == 200 and d["near_dup"]["threshold"] == 0.8
    for name in ("runs.csv", "summary.csv", "endpoints.csv", "results.md", "ablation.png"):
        assert (out["out"] / name).stat().st_size > 0
    md = (tmp_path / "doc" / "RESULTS.md").read_text()
    assert md == (out["out"] / "results.md").read_text() and (tmp_path / "doc" / "ablation.png").exists()
    assert md.index("## Pre-registered primary endpoints") < md.index("## Verdict") < \
        md.index("## Secondary endpoints")
    assert "| E1a | ko probe transfer (b)-(a), in A |" in md and "| E2 |" in md
    capsys.readouterr()
    run(parse_args(argv))
    log = capsys.readouterr().out
    assert "reusing prepared data" in log and log.count("reusing run_") == 6


def test_run_flops_parameter_count_matches_the_built_model(tiny_data):
    """run_flops (behind the --size gpu estimate) counts the weights the trainer really builds
    (all but the RMSNorm scales), for the tiny and the small model."""
    from xlda.ablation.runs import gpu_minutes, run_flops
    from xlda.training.dist_env import shutdown
    from xlda.training.loop import Trainer

    for size in ("tiny", "small"):
        a = _ablation(tiny_data, size=size, seq_length=None)
        model = Trainer(a.build()[0].run_config(), print_fn=lambda *x: None).setup().model_chunks[0]
        named = dict(model.named_parameters())
        vocab = next(p for n, p in named.items() if "word_embeddings" in n).shape[0]
        weights = sum(p.numel() for n, p in named.items() if "norm" not in n)
        assert run_flops(size, vocab=vocab)["params"] == weights, size
        shutdown()
    assert 8 <= gpu_minutes() <= 12  # the claim: --size gpu is ~10 min for 15 runs


def _gloo_threads() -> int:
    import os

    n = 0
    for t in os.listdir("/proc/self/task"):
        try:
            n += open(f"/proc/self/task/{t}/comm").read().startswith(("gloo", "pt_gloo"))
        except OSError:
            pass
    return n


@pytest.mark.skipif(not __import__("os").path.isdir("/proc/self/task"), reason="needs /proc")
def test_runs_in_one_process_do_not_pile_up_process_group_threads(tiny_data):
    """Each run tears down its process groups: before the fix every run left ~48 polling gloo
    threads behind (423 threads after 7 runs of the default ablation)."""
    from xlda.training.loop import Trainer

    a = _ablation(tiny_data, seeds=(1, 2), arms=("B",))
    held = prepare_heldout(a)
    Trainer(a.build()[0].run_config(), print_fn=lambda *x: None).setup()
    assert _gloo_threads() > 0  # the count below counts something
    counts = []
    for spec in a.build():
        train_and_eval(spec, held, log=lambda *x: None)
        counts.append(_gloo_threads())
    assert counts[1] - counts[0] <= 6, counts
