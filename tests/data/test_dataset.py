"""XLDADataset through megatron-core's BlendedMegatronDatasetBuilder, on hand-built corpora."""
import numpy as np
import pytest
import torch
from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

from xlda.data import XLDADataset, XLDADatasetConfig, build_xlda_datasets
from xlda.data.mock import MockTokenizer, mock_token_range

EOD = 0
TOK = MockTokenizer(eod=EOD, vocab_size=1000)
EN_DOCS = [[11, 12, 13, EOD], [14, 15, EOD], [16, 17, 18, 19, EOD]]
KO_DOCS = [[21, 22, EOD], [23, 24, 25, 26, EOD]]


def write_indexed(prefix, docs, dtype=np.int32):
    """A Megatron indexed dataset (prefix.bin/.idx) holding `docs` (lists of token ids)."""
    b = IndexedDatasetBuilder(str(prefix) + ".bin", dtype=dtype)
    for d in docs:
        b.add_item(torch.tensor(d, dtype=torch.int64))
        b.end_document()
    b.finalize(str(prefix) + ".idx")
    return str(prefix)


def make_config(tmp_path, lang_docs, **kw):
    prefixes = {lang: [write_indexed(tmp_path / f"{lang}_text_document", docs)]
                for lang, docs in lang_docs.items()}
    args = dict(random_seed=1234, sequence_length=6, split="1,0,0", tokenizer=TOK,
                lang_prefixes=prefixes, xlda_rho=1.0)
    args.update(kw)
    return XLDADatasetConfig(**args)


def test_exact_samples_two_languages(tmp_path):
    cfg = make_config(tmp_path, {"en": EN_DOCS, "ko": KO_DOCS})
    train, valid, test = build_xlda_datasets(cfg, [3, 0, 0])
    assert valid is None and test is None and isinstance(train, XLDADataset)
    assert train.languages == ("en", "ko") and len(train) == 3
    got = [train[i] for i in range(3)]
    # Pinned once from the builder and checked by hand: every token is the right document's
    # token at the right offset (en ids 1x, ko ids 2x), runs <= S-1 = 5 tokens, >= 2 languages.
    # item 0 = en doc 2 [0:2] | ko doc 1 [2:3] | en doc 2 [2:5] | (label) ko doc 1 [3:4]
    assert train.sample_spans(0) == [(0, 2, 0, 2), (1, 1, 2, 1), (0, 2, 2, 3), (1, 1, 3, 1)]
    assert got[0]["labels"].tolist() == [17, 25, 18, 19, 0, 26]
    assert [g["tokens"].tolist() for g in got] == EXPECTED_TOKENS
    assert [g["doc_ids"].tolist() for g in got] == EXPECTED_DOCS
    assert [g["lang_ids"].tolist() for g in got] == EXPECTED_LANGS
    for g in got:
        assert g["tokens"].dtype == torch.int64 and g["labels"].dtype == torch.int64
        assert g["doc_ids"].dtype == torch.int32 and g["lang_ids"].dtype == torch.int32
        assert g["loss_mask"].dtype == torch.float32 and torch.all(g["loss_mask"] == 1)
        assert g["position_ids"].tolist() == list(range(6))
        assert g["labels"][:-1].tolist() == g["tokens"][1:].tolist()
        assert len(set(g["lang_ids"].tolist())) >= 2
        # language ids agree with the token id ranges (1x = en, 2x = ko; EOD is either)
        for t, la in zip(g["tokens"].tolist(), g["lang_ids"].tolist()):
            assert t == EOD or t // 10 == la + 1


EXPECTED_TOKENS = [[16, 17, 25, 18, 19, 0], [0, 12, 23, 13, 0, 24], [21, 14, 15, 0, 22, 11]]
# doc ids number (lang, doc) occurrences in order of appearance; an interrupted document that
# resumes (offset > 0) keeps its id: item 0's en doc 2 is 0 on both sides of the ko token
EXPECTED_DOCS = [[0, 0, 1, 0, 0, 0], [0, 1, 2, 1, 1, 2], [0, 1, 1, 1, 0, 2]]
EXPECTED_LANGS = [[0, 0, 1, 0, 0, 0], [1, 0, 1, 0, 0, 1], [1, 0, 0, 0, 1, 0]]


def test_reset_position_ids_and_eod_mask_loss(tmp_path):
    cfg = make_config(tmp_path, {"en": EN_DOCS, "ko": KO_DOCS}, reset_position_ids=True,
                      eod_mask_loss=True)
    train, _, _ = build_xlda_datasets(cfg, [3, 0, 0])
    g = train[1]  # tokens [0, 12, 23, 13, 0, 24], doc ids [0, 1, 2, 1, 1, 2]
    assert g["tokens"].tolist() == [0, 12, 23, 13, 0, 24]
    assert g["position_ids"].tolist() == [0, 0, 0, 1, 2, 1]  # per document, across the gap
    assert g["loss_mask"].tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 1.0]  # EOD inputs masked


def test_splits_are_disjoint_per_language(tmp_path):
    rng = np.random.default_rng(0)
    docs = {lang: [list(rng.integers(base, base + 9, size=rng.integers(2, 30))) + [EOD]
                   for _ in range(40)] for lang, base in (("en", 10), ("ko", 20), ("ja", 30))}
    cfg = make_config(tmp_path, docs, split="60,30,10", sequence_length=32, xlda_rho=0.5)
    train, valid, test = build_xlda_datasets(cfg)  # num_samples None: one epoch each
    used = []
    for ds in (train, valid, test):
        assert len(ds) >= 1
        u = set()
        for i in range(len(ds)):
            u |= {(la, d) for la, d, _, _ in ds.sample_spans(i)}
        used.append(u)
    assert not (used[0] & used[1]) and not (used[0] & used[2]) and not (used[1] & used[2])
    # en has 40 docs: train 0..23, valid 24..35, test 36..39 (Megatron's rounding per language)
    assert {d for la, d in used[2] if la == 0} <= set(range(36, 40))
    assert {d for la, d in used[0] if la == 0} <= set(range(0, 24))


def test_mock_mode_runs_without_files():
    cfg = XLDADatasetConfig(random_seed=5, sequence_length=128, mock=True, split="90,10,0",
                            mock_num_documents=300)
    train, valid, test = build_xlda_datasets(cfg, [50, 5, 0])
    assert test is None and len(train) == 50 and len(valid) == 5
    assert train.languages == ("en", "ko", "ja", "zh")
    for i in range(len(train)):
        g = train[i]
        assert len(set(g["lang_ids"].tolist())) >= 2
        for t, la in zip(g["tokens"].tolist(), g["lang_ids"].tolist()):
            lo, hi = mock_token_range(la)
            assert t == cfg.tokenizer.eod or lo <= t < hi
    again = build_xlda_datasets(XLDADatasetConfig(
        random_seed=5, sequence_length=128, mock=True, split="90,10,0",
        mock_num_documents=300), [50, 5, 0])[0]
    assert torch.equal(again[7]["tokens"], train[7]["tokens"])


def test_single_language_fails_at_build(tmp_path):
    cfg = make_config(tmp_path, {"en": EN_DOCS})
    with pytest.raises(Exception) as e:
        build_xlda_datasets(cfg, [3, 0, 0])
    assert "needs >= 2 languages" in _chain(e.value) and "add another language" in _chain(e.value)


def test_language_with_p_but_no_tokens_fails(tmp_path):
    cfg = make_config(tmp_path, {"en": EN_DOCS * 4, "ko": KO_DOCS}, split="90,10,0",
                      sequence_length=4)
    with pytest.raises(Exception) as e:  # en valid = doc 11 of 12; ko's 2 docs: round(1.8) = 2
        build_xlda_datasets(cfg, [3, 3, 0])
    assert "language 'ko'" in _chain(e.value) and "0 tokens in the valid split" in _chain(e.value)


def test_beta_zero_language_is_excluded_so_single_language_fails(tmp_path):
    cfg = make_config(tmp_path, {"en": EN_DOCS, "ko": KO_DOCS}, xlda_alpha=0.0,
                      xlda_beta={"en": 1.0})
    with pytest.raises(Exception) as e:
        build_xlda_datasets(cfg, [3, 0, 0])
    assert "got ['en']" in _chain(e.value)


@pytest.mark.parametrize("kw, match", [
    ({"xlda_alpha": 2.0}, "outside [0, 1]"),
    ({"xlda_beta": {"fr": 1.0}}, "['fr']"),
    ({"xlda_alpha": 0.5, "xlda_beta": {"ko": -1.0}}, "negative"),
    ({"xlda_rho": 0.0}, "xlda_rho=0.0 must be in (0, 1]"),
])
def test_bad_knobs_fail_at_config(tmp_path, kw, match):
    with pytest.raises(ValueError) as e:
        make_config(tmp_path, {"en": EN_DOCS, "ko": KO_DOCS}, **kw)
    assert match in str(e.value)


def test_missing_files_name_the_language(tmp_path):
    with pytest.raises(FileNotFoundError, match="language 'ko'.*preprocess_data.py"):
        cfg = XLDADatasetConfig(random_seed=1, sequence_length=6, split="1,0,0", tokenizer=TOK,
                                lang_prefixes={"en": [write_indexed(tmp_path / "en", EN_DOCS)],
                                               "ko": [str(tmp_path / "nope")]})
        build_xlda_datasets(cfg, [3, 0, 0])


def _chain(err):
    msgs = []
    while err is not None:
        msgs.append(str(err))
        err = err.__cause__ or err.__context__
    return " | ".join(msgs)
