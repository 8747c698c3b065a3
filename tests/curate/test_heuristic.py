"""The built-in quality score (--heuristic-score): the route to --anneal-top without a score."""
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from xlda.curate.config import CurateConfig, CurateError, parse_lang_fractions
from xlda.curate.heuristic import components, heuristic_score


def test_components_by_hand():
    # 2 lines, both end in '.', one distinct; words Hello world . Hello world . (the 4 that are
    # not punctuation all letters)
    assert components("Hello world.\nHello world.") == {
        "terminal": 1.0, "unique_lines": 0.5, "alpha_words": 1.0,
        "length": math.log1p(6) / math.log1p(500)}
    # the closing bracket is looked through; 。「。」 are punctuation, 日本語ですはい 7 letter words
    assert components("日本語です。\n「はい。」") == {
        "terminal": 1.0, "unique_lines": 1.0, "alpha_words": 1.0,
        "length": math.log1p(11) / math.log1p(500)}
    # 11 of 22 characters on the sentence line; Price 42 $ Buy it now: 4 of 6 hold a letter
    assert components("Price: 42 $\nBuy it now.") == {
        "terminal": 0.5, "unique_lines": 1.0, "alpha_words": 4 / 6,
        "length": math.log1p(8) / math.log1p(500)}
    # a menu: no sentence ends, one line repeated, every word a letter word
    assert components("Home\nAbout\n\nHome\n") == {
        "terminal": 0.0, "unique_lines": 2 / 3, "alpha_words": 1.0,
        "length": math.log1p(3) / math.log1p(500)}
    assert heuristic_score("") == 0.0 and heuristic_score(" \n\n") == 0.0
    assert heuristic_score("Home\nAbout\n\nHome\n") == round(
        (0 + 2 / 3 + 1 + math.log1p(3) / math.log1p(500)) / 4, 6)


def test_prose_ranks_above_boilerplate(corpus):
    import gzip
    import itertools
    import json

    with gzip.open(corpus / "libreoffice_help.en.jsonl.gz", "rt") as f:
        pages = [json.loads(x)["text"] for x in itertools.islice(f, 50)]
    prose = [p for p in pages if len(p) > 1500][:10]
    # the same page's first 40 letter words, one per line: a navigation menu of its vocabulary
    menus = ["\n".join(w for w in p.split()[:40] if w.isalpha()) for p in prose]
    assert len(prose) == 10
    assert min(map(heuristic_score, prose)) > max(map(heuristic_score, menus))


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_score_is_bounded_and_repetition_never_raises_unique_lines(text):
    s = heuristic_score(text)
    assert 0.0 <= s <= 1.0 and heuristic_score(text) == s
    assert components(text + "\n" + text)["unique_lines"] <= components(text)["unique_lines"] + 1e-12


def test_anneal_top_without_a_score_names_every_route(tmp_path):
    f = tmp_path / "a.jsonl"
    f.write_text('{"text": "x"}\n')
    with pytest.raises(CurateError) as e:
        CurateConfig(inputs=[str(f)], output_dir=str(tmp_path / "o"),
                     anneal_top=parse_lang_fractions("en=0.2"))
    msg = str(e.value)
    assert "--score-field" in msg and "tools/train_quality_classifier.py" in msg
    assert "--heuristic-score" in msg
    with pytest.raises(CurateError, match="--score-field and --heuristic-score"):
        CurateConfig(inputs=[str(f)], output_dir=str(tmp_path / "o"), score_field="s",
                     heuristic_score=True)


def test_heuristic_anneal_cut_is_exact_and_keeps_the_top(planted, tmp_path):
    """curate --heuristic-score --anneal-top: every kept document scored by the heuristic, the
    annealing subset exactly the top fraction by it, the manifest naming the score."""
    from tests.curate.conftest import run_local
    from tests.curate.planted import read_output
    from xlda.curate.quantile import doc_key, top_k_count

    out = tmp_path / "out"
    fr = parse_lang_fractions("en=0.2,ko=0.1")
    m = run_local(planted.files, out, languages=("en", "ko"), heuristic_score=True, anneal_top=fr)
    assert m["score"] == {"heuristic": "xlda.curate.heuristic"}
    for L in ("en", "ko"):
        rows, ann = read_output(out / L), read_output(out / "anneal" / L)
        assert rows and all(r["quality_score"] == heuristic_score(r["text"]) for r in rows)
        k = top_k_count(len(rows), fr[L])
        assert len(ann) == k == m["languages"][L]["anneal"]["documents"] > 0
        ranked = sorted(rows, key=lambda r: doc_key(r["quality_score"], r["id"], r["text"]),
                        reverse=True)
        assert {r["id"] for r in ann} == {r["id"] for r in ranked[:k]}
