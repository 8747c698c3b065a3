"""The in-context transfer probe: which documents are paired, which tokens are scored, which are
visible under each mask, and that the document mask's transfer is exactly 0."""
import numpy as np
import pytest
import torch

from xlda.ablation.probe import CONDITIONS, build_probe, probe_batches, probe_sequence
from xlda.attention.mask import dense_mask

EOD = 0
S, C = 16, 8


def _a(lo, hi):
    """Tokens lo..hi followed by EOD (a document as the indexed data hold it)."""
    return np.array(list(range(lo, hi + 1)) + [EOD])


@pytest.fixture
def probe():
    docs = {"en": [_a(11, 15), _a(21, 29), _a(31, 41)],  # lengths 6, 10, 12
            "ko": [_a(101, 111), _a(201, 204), _a(121, 128)]}  # 12, 5, 9
    groups = {"en": ["g0", "g1", "g2"], "ko": ["g1", "gx", "g0"]}  # gx has no English side
    return build_probe(docs, groups, S, EOD, source="en", context_len=C)


def test_pairs_translation_and_nearest_length_unrelated_document(probe):
    assert list(probe) == ["ko"]
    k0, k2 = probe["ko"]  # gx skipped: no translation
    assert (k0.group, k0.unrelated_group, k2.group, k2.unrelated_group) == ("g1", "g2", "g0", "g1")
    # g1: translation has 10 tokens, context budget 8 -> its first 7 + EOD; the unrelated one is
    # the other English document at least 8 long nearest to 10 (g2, 12; g0 is too short) -> 7 + EOD
    assert k0.translation.tolist() == [21, 22, 23, 24, 25, 26, 27, EOD]
    assert k0.unrelated.tolist() == [31, 32, 33, 34, 35, 36, 37, EOD]
    assert k0.target.tolist() == list(range(101, 109))  # target budget S - C = 8
    # g0: the translation fits whole (6 = 5 + EOD); nearest-length other document: g1 (10)
    assert k2.translation.tolist() == [11, 12, 13, 14, 15, EOD]
    assert k2.unrelated.tolist() == [21, 22, 23, 24, 25, EOD]
    assert k2.target.tolist() == list(range(121, 129))


def test_sequences_score_the_same_target_tokens_at_the_same_positions(probe):
    k0, k2 = probe["ko"]
    a = probe_sequence(k0, "translation", S, EOD)
    assert a["tokens"].tolist() == [21, 22, 23, 24, 25, 26, 27, EOD] + list(range(101, 109))
    assert a["loss_mask"].nonzero().flatten().tolist() == list(range(8, 15))
    assert a["labels"][8:15].tolist() == list(range(102, 109))  # target i predicts i+1
    assert a["doc_ids"].tolist() == [0] * 8 + [1] * 8
    assert a["lang_ids"].tolist() == [0] * 8 + [1] * 8
    b = probe_sequence(k0, "unrelated", S, EOD)
    assert b["tokens"][:8].tolist() == [31, 32, 33, 34, 35, 36, 37, EOD]
    for k in ("labels", "loss_mask", "doc_ids", "lang_ids", "position_ids"):
        assert torch.equal(a[k], b[k]), k
    assert torch.equal(a["tokens"][8:], b["tokens"][8:])
    c = probe_sequence(k0, "none", S, EOD)
    assert c["tokens"].tolist() == list(range(101, 109)) + [EOD] * 8
    assert c["loss_mask"].nonzero().flatten().tolist() == list(range(0, 7))
    assert c["labels"][:7].tolist() == list(range(102, 109))
    assert c["doc_ids"].tolist() == [0] * 8 + [1] * 8  # padding is its own document
    # a shorter context: padding after the target, never scored
    a2 = probe_sequence(k2, "translation", S, EOD)
    assert a2["doc_ids"].tolist() == [0] * 6 + [1] * 8 + [2] * 2
    assert a2["loss_mask"].nonzero().flatten().tolist() == list(range(6, 13))


@pytest.mark.parametrize("mode, sees_context", [("document", False), ("xlda", True),
                                                ("causal", True)])
def test_what_a_scored_target_token_can_see(probe, mode, sees_context):
    for item in probe["ko"]:
        x = probe_sequence(item, "translation", S, EOD)
        m = dense_mask(x["doc_ids"][None], x["lang_ids"][None], mode)[0]
        o = len(item.translation)
        for q in x["loss_mask"].nonzero().flatten().tolist():
            visible = m[q].nonzero().flatten().tolist()
            assert visible == (list(range(0, q + 1)) if sees_context else list(range(o, q + 1)))


def test_contexts_in_the_same_language_as_the_target_would_be_hidden_by_xlda(probe):
    """Why the context carries the source language id: XLDA hides same-language OTHER documents."""
    x = probe_sequence(probe["ko"][0], "translation", S, EOD)
    same = torch.ones_like(x["lang_ids"])
    m = dense_mask(x["doc_ids"][None], same[None], "xlda")[0]
    assert m[10].nonzero().flatten().tolist() == [8, 9, 10]


def test_skips_targets_without_a_long_enough_unrelated_document_and_bad_budgets():
    docs = {"en": [_a(11, 30), _a(31, 33)], "ko": [_a(101, 120)]}
    groups = {"en": ["g0", "g1"], "ko": ["g0"]}
    assert build_probe(docs, groups, S, EOD, context_len=C) == {"ko": []}  # g1 has 4 < 8 tokens
    with pytest.raises(ValueError, match="do not fit"):
        build_probe(docs, groups, S, EOD, context_len=12)  # target 4 < 8
    with pytest.raises(ValueError, match="source language"):
        build_probe(docs, groups, S, EOD, source="de")


def test_batches_hold_every_condition_in_item_order(probe):
    bs = probe_batches(probe, S, EOD, batch=1)
    assert sorted(bs) == sorted(("ko", c) for c in CONDITIONS)
    assert [b["tokens"].shape for b in bs[("ko", "none")]] == [(1, S), (1, S)]
    assert bs[("ko", "translation")][1]["tokens"][0, 6:14].tolist() == list(range(121, 129))
    assert probe_batches({"ko": []}, S, EOD) == {("ko", c): [] for c in CONDITIONS}


def test_subsets_mark_copyable_and_native_scored_tokens():
    """copyable: the predicted token occurs in the translation's text (its EOD excluded);
    native: it does not and holds the target's script (here: ids >= 100 are "native")."""
    docs = {"en": [np.array([5, 6, 7, EOD]), np.array([8, 9, 10, EOD])],
            "ko": [np.array([100, 6, 101, 7, 102, 5, EOD])]}
    groups = {"en": ["g", "h"], "ko": ["g"]}
    native = {"ko": np.arange(200) >= 100, "en": np.zeros(200, bool)}
    (item,) = build_probe(docs, groups, 12, EOD, context_len=4, min_target=4, native=native)["ko"]
    # labels of the scored positions: target[1:] = 6, 101, 7, 102, 5, EOD
    assert item.copyable.tolist() == [True, False, True, False, True, False]
    assert item.native.tolist() == [False, True, False, True, False, False]
    seq = probe_sequence(item, "translation", 12, EOD)
    o = len(item.translation)
    assert seq["subset_copyable"].tolist() == [0] * o + [1, 0, 1, 0, 1, 0] + [0] * (12 - o - 6)
    assert (seq["subset_native"] <= seq["loss_mask"]).all()  # subsets of the scored tokens
    assert "subset_native" not in probe_sequence(
        build_probe(docs, groups, 12, EOD, context_len=4, min_target=4)["ko"][0], "none", 12, EOD)


def test_native_tokens_by_script():
    from xlda.ablation.probe import native_tokens

    class Tok:
        vocab_size = 4
        text = ["a", "가", "か", "中"]

        def detokenize(self, ids):
            return self.text[ids[0]]

    assert native_tokens(Tok(), "ko").tolist() == [False, True, False, False]
    assert native_tokens(Tok(), "ja").tolist() == [False, False, True, False]
    assert native_tokens(Tok(), "zh").tolist() == [False, False, False, True]
    assert not native_tokens(Tok(), "en").any()
