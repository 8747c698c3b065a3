"""Document groups through preprocess, merge and the index (xlda/data/groups.py): stored beside
each dataset, concatenated by a merge, read by the packer with --xlda-affinity-key; an index with
affinity has its own cache key, one without keeps the old one."""
import json

import numpy as np
import pytest

from tests.data.fixtures import word_level_tokenizer, write_jsonl
from tests.data.test_dataset import TOK, write_indexed
from tests.data.test_preprocess import WORDS, cli
from xlda.cli.merge_datasets import main as merge
from xlda.data.groups import group_hash, groups_path

DOCS = [
    {"text": "hello world", "lang": "en", "id": "help/en/a.html"},
    {"text": "안녕 세계", "lang": "ko", "id": "help/ko/a.html"},
    {"text": "world hello world", "lang": "en", "id": "help/en/b.html"},
    {"text": "안녕", "lang": "ko"},  # no id: a bad_group line
    {"text": "세계 세계", "lang": "ko", "id": "help/ko/b.html"},
]
PATTERN = r"^help/[a-z]+/(.+)$"  # the page path without its language


def test_group_hash_is_a_nonzero_function_of_the_key():
    assert group_hash("a.html") == group_hash("a.html") != group_hash("b.html")
    assert all(group_hash(str(i)) != 0 for i in range(1000))


def test_preprocess_stores_each_documents_group(tmp_path):
    wl = word_level_tokenizer(tmp_path, WORDS)
    out = tmp_path / "o" / "lo"
    assert cli(wl, [write_jsonl(tmp_path / "d.jsonl", DOCS)], out, "--group-key", "id",
               "--group-pattern", PATTERN) == 0
    en = np.load(groups_path(f"{out}_en_text_document", "id"))
    ko = np.load(groups_path(f"{out}_ko_text_document", "id"))
    assert en.tolist() == [group_hash("a.html"), group_hash("b.html")]
    assert ko.tolist() == [group_hash("a.html"), group_hash("b.html")]  # translations agree
    m = json.loads((tmp_path / "o" / "lo.manifest.json").read_text())
    assert m["rejected"]["bad_group"] == 1 and m["group_key"] == "id"
    assert "d.jsonl:4: bad_group: no field 'id'" in m["reject_examples"]["bad_group"][0]
    # a rerun without --group-key leaves no groups of the old set behind
    assert cli(wl, [tmp_path / "d.jsonl"], out) == 0
    assert not (tmp_path / "o" / "lo_en_text_document.group-id.npy").exists()


def test_bad_group_flags(tmp_path, capsys):
    wl = word_level_tokenizer(tmp_path, WORDS)
    data = write_jsonl(tmp_path / "d.jsonl", DOCS)
    assert cli(wl, [data], tmp_path / "x", "--group-pattern", "a") == 2
    assert "--group-pattern needs --group-key" in capsys.readouterr().err
    assert cli(wl, [data], tmp_path / "x", "--group-key", "id", "--group-pattern", "(") == 2
    assert "not a regular expression" in capsys.readouterr().err
    assert cli(wl, [data], tmp_path / "x", "--group-key", "a b") == 2
    assert "a field name of letters" in capsys.readouterr().err


def test_merge_concatenates_the_groups_and_refuses_a_mix(tmp_path, capsys):
    wl = word_level_tokenizer(tmp_path, WORDS)
    d = tmp_path / "shards"
    for i, docs in enumerate((DOCS[:2], DOCS[2:])):
        assert cli(wl, [write_jsonl(tmp_path / f"s{i}.jsonl", docs)], d / f"s{i}",
                   "--group-key", "id", "--group-pattern", PATTERN) == 0
    assert merge(["--input", str(d), "--output-prefix", str(tmp_path / "m" / "x")]) == 0
    en = np.load(groups_path(str(tmp_path / "m" / "x_en_text_document"), "id"))
    ko = np.load(groups_path(str(tmp_path / "m" / "x_ko_text_document"), "id"))
    assert en.tolist() == [group_hash("a.html"), group_hash("b.html")]
    assert ko.tolist() == [group_hash("a.html"), group_hash("b.html")]
    assert json.loads((tmp_path / "m" / "x.manifest.json").read_text())["group_key"] == "id"
    assert cli(wl, [tmp_path / "s0.jsonl"], d / "s2") == 0  # a shard without groups
    capsys.readouterr()
    assert merge(["--input", str(d), "--output-prefix", str(tmp_path / "m2" / "x")]) == 2
    assert "s2.manifest.json has --group-key None but" in capsys.readouterr().err


def _grouped_corpus(tmp_path, n=40):
    """en and ko: page i in both languages (ko's in reverse file order), groups stored as
    preprocess stores them."""
    rng = np.random.default_rng(0)
    prefixes = {}
    for lang, order in (("en", range(n)), ("ko", range(n - 1, -1, -1))):
        docs = [list(rng.integers(10, 900, int(rng.integers(3, 12)))) + [0] for _ in order]
        prefix = write_indexed(tmp_path / f"c_{lang}_text_document", docs)
        np.save(groups_path(prefix, "page"), np.array([group_hash(f"p{i}") for i in order]))
        prefixes[lang] = [prefix]
    return prefixes


def test_the_index_reads_the_groups_and_keys_its_cache(tmp_path):
    from xlda.data import XLDADatasetConfig, build_xlda_datasets

    prefixes = _grouped_corpus(tmp_path)

    def build(**kw):
        cfg = XLDADatasetConfig(random_seed=3, sequence_length=16, split="1,0,0", tokenizer=TOK,
                                lang_prefixes=prefixes, xlda_rho=0.5, **kw)
        return build_xlda_datasets(cfg, [20, 0, 0])[0]

    plain = build()
    aff = build(xlda_affinity_key="page", xlda_affinity_p=1.0)
    assert aff.cache_base != plain.cache_base
    assert build(xlda_affinity_key="page", xlda_affinity_p=0.0).cache_base == plain.cache_base
    st = aff.index.stats or aff.index.description["stats"]  # built here, or read from the cache
    assert st["affinity_pairs"] > 0 and st["affinity_swaps"] > 0
    # the pairs are translations: a piece of en page i is followed by ko page i
    ko_page = {d: 39 - d for d in range(40)}  # ko's file order is reversed
    pairs = 0
    for i in range(len(aff)):
        spans = aff.sample_spans(i)
        for (la, da, oa, na, _), (lb, db, ob, nb, _) in zip(spans, spans[1:]):
            if (la, lb) == (0, 1) and ob == 0 and ko_page[db] == da:
                pairs += 1
    assert pairs > 0
    # (megatron-core wraps a build error in its own once torch.distributed is up: the chain)
    with pytest.raises(Exception) as e:
        build(xlda_affinity_key="url", xlda_affinity_p=0.5)
    chain = []
    err = e.value
    while err is not None:
        chain.append(err)
        err = err.__cause__ or err.__context__
    missing = [x for x in chain if isinstance(x, FileNotFoundError)]
    assert missing and "tools/preprocess_data.py --group-key url" in str(missing[0])
    with pytest.raises(ValueError, match="needs --xlda-affinity-key FIELD"):
        build(xlda_affinity_p=0.5)


def test_affinity_flags_and_preflight(tmp_path):
    """--xlda-affinity-key/-p reach the data config; the pre-flight names a missing groups
    file and the command that makes it."""
    from xlda.cli import preflight
    from xlda.cli.pretrain import resolve
    from xlda.training.config import ConfigError

    prefixes = _grouped_corpus(tmp_path)
    flags = ["--data-path", prefixes["en"][0], prefixes["ko"][0], "--seq-length", "16",
             "--xlda-alpha", "1"]
    cfg, _ = resolve(flags + ["--xlda-affinity-key", "page", "--xlda-affinity-p", "0.5"])
    assert (cfg.data.xlda_affinity_key, cfg.data.xlda_affinity_p) == ("page", 0.5)
    ds = cfg.data.build(tokenizer=TOK)
    assert (ds.xlda_affinity_key, ds.xlda_affinity_p) == ("page", 0.5)
    preflight.check_groups(cfg.data, cfg.data.language_paths())  # the files are there
    cfg, _ = resolve(flags + ["--xlda-affinity-key", "url", "--xlda-affinity-p", "0.5"])
    with pytest.raises(ConfigError, match=r"en_text_document.group-url.npy not found .*"
                                          r"--group-key url"):
        preflight.check_groups(cfg.data, cfg.data.language_paths())
    with pytest.raises(ConfigError, match="needs --xlda-affinity-key FIELD"):
        resolve(flags + ["--xlda-affinity-p", "0.5"])
    with pytest.raises(ConfigError, match=r"--xlda-affinity-p must be in \[0, 1\]"):
        resolve(flags + ["--xlda-affinity-key", "page", "--xlda-affinity-p", "2"])
