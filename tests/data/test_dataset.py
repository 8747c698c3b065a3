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
    # Checked by hand against the packing rule (xlda/data/packing.py). P = (0.6, 0.4) by
    # tokens (12 en, 8 ko); 3 windows: the band D = 0.5 * 6 = 3 tokens. The stream:
    #   ko1 [0,5) en0 [5,9) en2[:1] [9,10) ko0 [10,13) ko1[:1] [13,14) en2[1:] [14,18)
    #   ko1[1:] [18,22)
    # Window 0 changes at 5 (ko's next document would cross the window end). At 9 (window 1
    # has no change yet) the next en document would cross the window end and ko0 (3 tokens)
    # fits, so en2 is cut at 12 + 1 - 3 = 10 and ko0 ends at 13, one token into window 2. At
    # 13 the same plan would cut ko1 at 15, but ko is 8 - 0.4 * 13 = 2.8 tokens ahead of its
    # share: one more token would pass the band of 3, so the band cuts ko1 after one token
    # (13 -> 14) and en2's rest follows. en0 crosses the sample boundary at 6 as in Megatron's
    # plain packing. Cut pieces mask the loss of their last token. Realized shares over the
    # 18 input tokens: en 9, ko 9 (v2: 8 / 10). The last piece runs past the 19 tokens the
    # samples read: no band cut there.
    # shuffle = [2, 1, 0]: item 0 is sample 2.
    assert train.sample_spans(0) == [(1, 0, 2, 1, False), (1, 1, 0, 1, True),
                                     (0, 2, 1, 4, False), (1, 1, 1, 1, False)]
    assert train.index.stats["shares"] == [0.5, 0.5]
    assert train.index.stats["band_cuts"] == 1 and train.index.stats["cuts"] == 2
    assert train.sample_spans(1) == [(0, 0, 1, 3, False), (0, 2, 0, 1, True),
                                     (1, 0, 0, 3, False)]
    assert got[0]["labels"].tolist() == [23, 17, 18, 19, 0, 24]
    assert got[2]["labels"].tolist() == [24, 25, 26, 0, 11, 12]
    assert [g["loss_mask"].tolist() for g in got] == EXPECTED_LOSS_MASK
    assert [g["tokens"].tolist() for g in got] == EXPECTED_TOKENS
    assert [g["doc_ids"].tolist() for g in got] == EXPECTED_DOCS
    assert [g["lang_ids"].tolist() for g in got] == EXPECTED_LANGS
    for g in got:
        assert g["tokens"].dtype == torch.int64 and g["labels"].dtype == torch.int64
        assert g["doc_ids"].dtype == torch.int32 and g["lang_ids"].dtype == torch.int32
        assert g["loss_mask"].dtype == torch.float32
        assert g["position_ids"].tolist() == list(range(6))
        assert g["labels"][:-1].tolist() == g["tokens"][1:].tolist()
        assert len(set(g["lang_ids"].tolist())) >= 2
        # language ids agree with the token id ranges (1x = en, 2x = ko; EOD is either)
        for t, la in zip(g["tokens"].tolist(), g["lang_ids"].tolist()):
            assert t == EOD or t // 10 == la + 1


EXPECTED_TOKENS = [[0, 23, 17, 18, 19, 0], [12, 13, 0, 16, 21, 22], [23, 24, 25, 26, 0, 11]]
# doc ids number (lang, doc) occurrences in order of appearance within the sample
EXPECTED_DOCS = [[0, 1, 2, 2, 2, 2], [0, 0, 0, 1, 2, 2], [0, 0, 0, 0, 0, 1]]
EXPECTED_LANGS = [[1, 1, 0, 0, 0, 0], [0, 0, 0, 0, 1, 1], [1, 1, 1, 1, 1, 0]]
EXPECTED_LOSS_MASK = [[1.0, 0.0, 1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0, 1.0, 1.0], [1.0] * 6]


def test_cut_document_masks_the_label(tmp_path):
    # en: one 14-token document; ko: two 2-token documents; S = 6, 2 samples (13 tokens).
    # Checked by hand: the stream starts with ko1 [0, 2), then en0 at 2. Window 0 has its
    # change (at 2); en0 would cover all of window 1 [6, 12), so it is cut at window 1's last
    # input position (11) and ko0 follows. In sample 1 = [6, 13) the cut piece's last token
    # (19, index 4) has a ko token as label: loss_mask 0 there, nowhere else.
    en = [[11, 12, 13, 14, 15, 16, 17, 18, 19, 11, 12, 13, 14, EOD]]
    ko = [[21, EOD], [22, EOD]]
    cfg = make_config(tmp_path, {"en": en, "ko": ko}, xlda_rho=0.5)
    train, _, _ = build_xlda_datasets(cfg, [2, 0, 0])
    assert train.index.shuffle.tolist() == [1, 0]
    assert train.sample_spans(0) == [(0, 0, 4, 5, True), (1, 0, 0, 2, False)]
    g = train[0]
    assert g["tokens"].tolist() == [15, 16, 17, 18, 19, 21]
    assert g["labels"].tolist() == [16, 17, 18, 19, 21, 0]
    assert g["loss_mask"].tolist() == [1.0, 1.0, 1.0, 1.0, 0.0, 1.0]
    assert g["lang_ids"].tolist() == [0, 0, 0, 0, 0, 1]
    g = train[1]  # sample 0: ko1, then en0's first 4 tokens; en0 goes on in sample 1 (no cut)
    assert train.sample_spans(1) == [(1, 1, 0, 2, False), (0, 0, 0, 5, False)]
    assert g["tokens"].tolist() == [22, 0, 11, 12, 13, 14]
    assert g["loss_mask"].tolist() == [1.0] * 6


def test_reset_position_ids_and_eod_mask_loss(tmp_path):
    cfg = make_config(tmp_path, {"en": EN_DOCS, "ko": KO_DOCS}, reset_position_ids=True,
                      eod_mask_loss=True)
    train, _, _ = build_xlda_datasets(cfg, [3, 0, 0])
    g = train[1]  # en0 from offset 1, en2's first token (cut), ko0
    assert g["tokens"].tolist() == [12, 13, 0, 16, 21, 22]
    assert g["position_ids"].tolist() == [0, 1, 2, 0, 0, 1]  # per document occurrence
    # EOD input masked (index 2) and the cut (index 3: its label is ko0's first token)
    assert g["loss_mask"].tolist() == [1.0, 1.0, 0.0, 0.0, 1.0, 1.0]


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
            u |= {(la, d) for la, d, _, _, _ in ds.sample_spans(i)}
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
    # (S = 8: ko's share 1/7 gives 1.14 tokens per window, enough for the guarantee)
    cfg = make_config(tmp_path, {"en": EN_DOCS * 4, "ko": KO_DOCS}, split="90,10,0",
                      sequence_length=8)
    with pytest.raises(Exception) as e:  # en valid = doc 11 of 12; ko's 2 docs: round(1.8) = 2
        build_xlda_datasets(cfg, [3, 3, 0])
    assert "language 'ko'" in _chain(e.value) and "0 tokens in the valid split" in _chain(e.value)


def test_unread_split_with_an_empty_language_does_not_stop_the_run(tmp_path):
    # as above, ko has no valid (or test) documents; a run that never reads those splits
    # (num_samples 0, what the trainer passes for test, and for valid without evaluation)
    # builds no index for them and trains
    cfg = make_config(tmp_path, {"en": EN_DOCS * 4, "ko": KO_DOCS}, split="80,10,10",
                      sequence_length=8)
    train, valid, test = build_xlda_datasets(cfg, [3, 0, 0])
    assert len(train) == 3 and len(valid) == 0 and len(test) == 0
    assert valid.index is None and test.index is None
    with pytest.raises(IndexError, match="valid split was built with 0 samples"):
        valid[0]


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
