"""Unit tests: the offline word tokenizer, the exact top-k selection, configs, language ID."""
from fractions import Fraction

import numpy as np
import pytest
from datatrove.data import Document
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.curate.planted import BOILERPLATE_REASON, CLEAN, CYRILLIC, boilerplate
from xlda.curate.config import CurateConfig, CurateError, LanguageConfig, parse_lang_fractions
from xlda.curate.quantile import KeyFiles, bits_score, doc_key, score_bits, top_k_count, write_keys
from xlda.curate.steps import LanguageIdentifier, build_language_filters, decide
from xlda.curate.words import ScriptWordTokenizer


def test_word_tokenizer_is_script_aware():
    t = ScriptWordTokenizer("ko")
    assert t.word_tokenize("Don't stop: 한국어 文本の。") == \
        ["Don't", "stop", ":", "한", "국", "어", "文", "本", "の", "。"]
    assert t.sent_tokenize("One. Two?\n日本語です。次") == ["One.", "Two?", "日本語です。", "次"]
    assert ScriptWordTokenizer("ja") != t and ScriptWordTokenizer("ko") == t


@pytest.mark.parametrize("lang", ["en", "ko", "ja", "zh"])
def test_each_filter_decision_on_hand_built_documents(lang):
    chain = build_language_filters(LanguageConfig.load(lang))
    assert [n for n, _ in chain] == ["gopher_quality", "gopher_repetition", "fineweb_quality"]
    assert decide(chain, Document(CLEAN[lang], "clean")) is None
    for name, text in boilerplate(CLEAN[lang]).items():
        assert decide(chain, Document(text, name)) == BOILERPLATE_REASON[name], name


def test_language_identifier_labels_drops_and_counts(tmp_path):
    step = LanguageIdentifier("script", {"en": 0.65, "ko": 0.5}, report_dir=str(tmp_path))
    docs = [Document(CLEAN["en"], "en", metadata={"lang": "xx"}), Document(CLEAN["ko"], "ko"),
            Document(CLEAN["ja"], "ja"), Document(CYRILLIC, "ru"),
            Document(CLEAN["en"][:150] + CLEAN["ko"][:60], "mixed")]
    kept = list(step.run(docs, 0, 1))
    assert [(d.id, d.metadata["lang"], d.metadata["lang_score"]) for d in kept] == \
        [("en", "en", 1.0), ("ko", "ko", 1.0)]
    assert kept[0].metadata["source_lang"] == "xx"
    import json

    rep = json.loads((tmp_path / "00000.json").read_text())["counts"]
    assert rep == {"en": {"identified": 1, "low_confidence": 1}, "ko": {"identified": 1},
                   "ja": {"unknown_language": 1}, "unknown": {"undetected_language": 1}}


@given(st.lists(st.floats(allow_nan=False, width=64), min_size=2, max_size=50))
def test_score_bits_preserve_order(xs):
    xs = sorted(xs)
    bits = [score_bits(x) for x in xs]
    assert bits == sorted(bits)
    assert all(bits_score(b) == x for b, x in zip(bits, xs))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.lists(st.integers(0, 4), max_size=30), min_size=1, max_size=5),
       st.fractions(min_value=0, max_value=1))
def test_kth_largest_matches_a_global_sort(tmp_path_factory, shards, frac):
    d = tmp_path_factory.mktemp("keys")
    allkeys = []
    for i, scores in enumerate(shards):
        keys = [doc_key(float(s), f"{i}/{j}", "t") for j, s in enumerate(scores)]
        allkeys += keys
        write_keys(keys, d / f"{i:05d}.npy")
    kf = KeyFiles(d.glob("*.npy"))
    assert kf.total == len(allkeys)
    k = top_k_count(len(allkeys), frac)
    ranked = sorted(((h << 64) | lo for h, lo in allkeys), reverse=True)
    t = kf.kth_largest(k)
    if k == 0:
        assert t is None
    else:
        assert t == ranked[k - 1] and kf.count_ge(t) == k


def test_top_k_count_rounds_half_up_exactly():
    assert [top_k_count(n, Fraction("0.1")) for n in (0, 4, 5, 14, 15, 25)] == [0, 0, 1, 1, 2, 3]
    assert top_k_count(10, Fraction("0.2")) == 2


def test_config_errors_name_the_flag(tmp_path):
    with pytest.raises(CurateError, match="--anneal-top"):
        parse_lang_fractions("en=1.5")
    assert parse_lang_fractions("en=0.2,ko=0.1") == {"en": Fraction(1, 5), "ko": Fraction(1, 10)}
    with pytest.raises(CurateError, match="needs a score"):
        CurateConfig(inputs=["x"], output_dir="o", anneal_top={"en": Fraction(1, 5)})
    with pytest.raises(CurateError, match="no curation config for language 'fr'"):
        LanguageConfig.load("fr")
    (tmp_path / "en.yaml").write_text("lang: en\nlanguage_id: {min_confidence: 0.5}\nbogus: 1\n")
    with pytest.raises(CurateError, match="unknown sections"):
        LanguageConfig.load("en", tmp_path)


def test_lingua_identifier_gives_label_and_confidence(tmp_path):
    pytest.importorskip("lingua")
    step = LanguageIdentifier("lingua", {"en": 0.65, "ko": 0.5, "ja": 0.5, "zh": 0.5},
                              report_dir=str(tmp_path))
    kept = list(step.run([Document(CLEAN[L], L) for L in ("en", "ko", "ja", "zh")], 0, 1))
    assert [d.metadata["lang"] for d in kept] == ["en", "ko", "ja", "zh"]
    assert all(0.65 <= d.metadata["lang_score"] <= 1.0 for d in kept)
