"""The ablation's corpus side: any per-language JSONL, an optional alignment key, and held-out
splits that never leak into training."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.data.fixtures import write_jsonl
from xlda.ablation.corpus import (GROUP, ReadSpec, chunk_documents, prepare_data, read_docs,
                                  split_groups, split_per_language)


def _d(group, text=None):
    return {"text": f"page {group}" if text is None else text, GROUP: group}


# -- reading -----------------------------------------------------------------------------------
def test_group_key_field_and_pattern(tmp_path):
    recs = [{"page": "p1", "text": "one"}, {"page": "p2", "text": "two"}]
    p = write_jsonl(tmp_path / "en.jsonl", recs)
    spec = ReadSpec(group_key="page", script_filter=False)
    assert read_docs(p, "en", spec) == [_d("p1", "one"), _d("p2", "two")]
    ids = [{"id": "lo/ko/text/a.html", "body": "가"}, {"id": "lo/en-US/text/a.html", "body": "b"}]
    p2 = write_jsonl(tmp_path / "x.jsonl.gz", ids, compression="gz")
    spec = ReadSpec(text_key="body", group_key="id", group_pattern=r"^lo/[^/]+/(.+)$",
                    script_filter=False)
    assert [d[GROUP] for d in read_docs(p2, "ko", spec)] == ["text/a.html", "text/a.html"]
    assert read_docs(p, "en", ReadSpec(script_filter=False))[0][GROUP] is None  # no key


def test_reading_errors_name_the_file_line_and_flag(tmp_path):
    p = write_jsonl(tmp_path / "en.jsonl", [{"page": "p1", "text": "a"}, {"text": "b"}])
    with pytest.raises(ValueError, match=r"en.jsonl:2: no field 'page' \(--group-key\)"):
        read_docs(p, "en", ReadSpec(group_key="page", script_filter=False))
    with pytest.raises(ValueError, match=r"en.jsonl:1: .*string field 'body' \(--text-key\)"):
        read_docs(p, "en", ReadSpec(text_key="body", script_filter=False))
    with pytest.raises(ValueError, match=r"en.jsonl:1: page 'p1' does not match --group-pattern"):
        read_docs(p, "en", ReadSpec(group_key="page", group_pattern=r"^q(\d)$",
                                    script_filter=False))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n{not json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not JSON"):
        read_docs(bad, "en", ReadSpec(script_filter=False))
    with pytest.raises(ValueError, match="--group-pattern needs --group-key"):
        ReadSpec(group_pattern="x")
    with pytest.raises(ValueError, match=r"--group-pattern '\(': not a regular expression"):
        ReadSpec(group_key="page", group_pattern="(")
    for value in (None, "", [1], True):  # would merge unrelated documents into one group
        p = write_jsonl(tmp_path / "n.jsonl", [{"page": value, "text": "a"}])
        with pytest.raises(ValueError, match=r"n.jsonl:1: page .* not a usable group key"):
            read_docs(p, "en", ReadSpec(group_key="page", script_filter=False))


def test_script_filter_and_blank_documents(tmp_path):
    recs = [{"text": "한국어 도움말 페이지입니다"}, {"text": "Untranslated English page"},
            {"text": "   "}]
    p = write_jsonl(tmp_path / "ko.jsonl", recs)
    assert [d["text"] for d in read_docs(p, "ko")] == ["한국어 도움말 페이지입니다"]
    assert len(read_docs(p, "ko", ReadSpec(script_filter=False))) == 2  # blank always dropped


# -- the aligned split -------------------------------------------------------------------------
def test_aligned_split_removes_held_out_groups_from_training_in_every_language():
    docs = {"en": [_d(g) for g in "abcdefgh"],
            "ko": [_d(g) for g in "abcdefxy"],  # g,h only in en; x,y only in ko
            "ja": [_d(g) for g in "abcz"]}
    sp = split_groups(docs, 3)
    assert len(sp.heldout_groups) == 3
    # groups in the most languages first: a, b, c are in all three
    assert set(sp.heldout_groups) == set("abc")
    for lang, ds in docs.items():
        assert {d[GROUP] for d in sp.heldout[lang]} == set("abc")
        assert not {d[GROUP] for d in sp.train[lang]} & set("abc")
        assert len(sp.train[lang]) == len(ds) - 3
    # deterministic, independent of file order
    rev = {l: ds[::-1] for l, ds in docs.items()}
    assert split_groups(rev, 3).heldout_groups == sp.heldout_groups
    assert [len(v) for v in split_groups(docs, 3, max_train_docs=2).train.values()] == [2, 2, 1]


def test_aligned_split_duplicates_of_a_group_are_all_held_out_one_is_scored():
    docs = {"en": [_d("a", "first"), _d("a", "second"), _d("b")], "ko": [_d("a"), _d("b")]}
    sp = split_groups(docs, 1)
    assert sp.heldout_groups == ["a"]  # both groups in both languages; "a" ranks first
    assert [d[GROUP] for d in sp.train["en"]] == ["b"]
    assert [d["text"] for d in sp.heldout["en"]] == ["first"]


def test_aligned_split_keeps_a_held_out_text_filed_under_another_key_out_of_training():
    docs = {"en": [_d("a", "same page"), _d("b", "same page"), _d("c", "other")],
            "ko": [_d("a", "쪽"), _d("d", "다른")]}  # only a is in both languages
    sp = split_groups(docs, 1)
    assert sp.heldout_groups == ["a"]
    assert [d["text"] for d in sp.train["en"]] == ["other"]  # b's copy of a's text is dropped


LONG = ("The Basic dialog editor opens and contains a blank dialog. Choose Tools - Macros - "
        "Organize Dialogs, and then click New. Enter a name for the dialog and click OK. ")


def test_aligned_split_holds_a_near_copy_under_another_key_out_of_training_in_every_language():
    """A page filed again under another key with one word changed is not an exact copy; MinHash
    finds it and its group leaves training in every language (its translation too)."""
    near = LONG.replace("blank", "empty")
    docs = {"en": [_d("a", LONG), _d("b", near), _d("c", "Something else entirely, unrelated.")],
            "ko": [_d("a", "대화 상자"), _d("b", "대화 상자 편집기"), _d("c", "다른 쪽")],
            "ja": [_d("a", "ダイアログ")]}  # a: in the most languages, so a is held out
    assert {d[GROUP] for d in split_groups(docs, 1).train["ko"]} == {"b", "c"}  # off: kept
    sp = split_groups(docs, 1, near_dup=0.5)
    assert sp.heldout_groups == ["a"] and sp.near_dup_groups == ["b"]
    for lang in ("en", "ko"):
        assert [d[GROUP] for d in sp.train[lang]] == ["c"]
    assert sp.train["ja"] == []


def test_chunks_share_cut_points_across_translations_with_the_same_lines():
    en = "Title line\nfirst sentence here\nsecond one\nthird sentence, long enough"
    ko = "제목\n첫 문장입니다\n둘째\n셋째 문장입니다, 충분히 길다"
    docs = {"en": [_d("p", en), _d("q", "one line\ntwo")], "ko": [_d("p", ko), _d("q", "한 줄")]}
    out = chunk_documents(docs, 32, script_filter=False)
    # cost per line = its longer version + 1: 11, 20, 11, 28; runs of <= 32: [0, 1], [2], [3]
    assert [(d[GROUP], d["text"]) for d in out["en"] if d[GROUP].startswith("p")] == [
        ("p#0", "Title line\nfirst sentence here"), ("p#1", "second one"),
        ("p#2", "third sentence, long enough")]
    assert [(d[GROUP], d["text"]) for d in out["ko"] if d[GROUP].startswith("p")] == [
        ("p#0", "제목\n첫 문장입니다"), ("p#1", "둘째"), ("p#2", "셋째 문장입니다, 충분히 길다")]
    # q: 2 lines in en, 1 in ko: each cut on its own, aligned with nothing
    assert [d[GROUP] for d in out["en"] if d[GROUP].startswith("q")] == ["q#en0"]
    assert [d[GROUP] for d in out["ko"] if d[GROUP].startswith("q")] == ["q#ko0"]


def test_chunks_drop_blank_and_other_script_runs_and_keep_long_lines_whole():
    docs = {"ko": [_d("p", "Module Contents Index\n가나다라 마바사\n   \n" + "아" * 50)]}
    out = chunk_documents(docs, 20)
    # run 0 (English UI strings) is not Korean: dropped; the blank line joins run 1 or is its
    # own blank run; the 50-character line exceeds the budget and stays whole
    assert [d["text"] for d in out["ko"]][-1] == "아" * 50
    assert all("Module" not in d["text"] for d in out["ko"])
    assert all(d["text"].strip() for d in out["ko"])
    kept = chunk_documents(docs, 20, script_filter=False)["ko"]
    assert kept[0]["text"].startswith("Module")


@given(st.lists(st.lists(st.text("ab ", min_size=0, max_size=12), min_size=1, max_size=8),
                min_size=1, max_size=4), st.integers(1, 40))
@settings(max_examples=60, deadline=None)
def test_chunks_are_whole_lines_in_order_and_lose_no_text(pages, budget):
    """Without the filter, every non-blank run is kept: joined back they are the page's lines."""
    docs = {"en": [_d(f"g{i}", "\n".join(lines)) for i, lines in enumerate(pages)]}
    out = chunk_documents(docs, budget, script_filter=False)["en"]
    for i, lines in enumerate(pages):
        mine = [d for d in out if d[GROUP].startswith(f"g{i}#")]
        got = "\n".join(d["text"] for d in mine).split("\n")
        assert [x for x in got if x.strip()] == [x for x in lines if x.strip()]
        for d in mine:
            ls = d["text"].split("\n")
            assert len(ls) == 1 or sum(len(x) + 1 for x in ls) <= budget


def test_aligned_split_errors():
    with pytest.raises(ValueError, match="--heldout 3: 2 alignment groups"):
        split_groups({"en": [_d("a"), _d("b")]}, 3)
    with pytest.raises(ValueError, match="--heldout 2: 2 alignment groups.*leave some"):
        split_groups({"en": [_d("a"), _d("b")]}, 2)
    with pytest.raises(ValueError, match="--heldout 0"):
        split_groups({"en": [_d("a"), _d("b")]}, 0)
    with pytest.raises(ValueError, match="--group-key"):
        split_groups({"en": [_d(None)]}, 1)


@settings(max_examples=50, deadline=None)
@given(st.dictionaries(st.sampled_from(["en", "ko", "ja", "zh"]),
                       st.lists(st.integers(0, 30), min_size=1, max_size=40), min_size=1),
       st.integers(1, 10))
def test_no_held_out_group_leaks_into_training_in_any_language(groups, n):
    docs = {l: [_d(f"g{g}", f"{l}{i}") for i, g in enumerate(gs)] for l, gs in groups.items()}
    total = len({g for gs in groups.values() for g in gs})
    if n >= total:
        with pytest.raises(ValueError):
            split_groups(docs, n)
        return
    sp = split_groups(docs, n)
    held = set(sp.heldout_groups)
    assert len(held) == n
    for l in docs:
        assert not {d[GROUP] for d in sp.train[l]} & held
        assert {d[GROUP] for d in sp.heldout[l]} == held & {d[GROUP] for d in docs[l]}
        assert len(sp.train[l]) + sum(d[GROUP] in held for d in docs[l]) == len(docs[l])


def test_per_language_split_without_key():
    docs = {"en": [_d(None, t) for t in ["a", "b", "c", "d", "a"]], "ko": [_d(None, "x"), _d(None, "y")]}
    sp = split_per_language(docs, 1)
    for l in docs:
        held = {d["text"] for d in sp.heldout[l]}
        assert len(held) == 1 and not held & {d["text"] for d in sp.train[l]}
    assert sp.heldout_groups == []
    rev = {l: ds[::-1] for l, ds in docs.items()}  # independent of document order
    assert split_per_language(rev, 1).heldout == sp.heldout
    with pytest.raises(ValueError, match="--heldout 2: ko has 2 distinct documents"):
        split_per_language(docs, 2)


def test_prepare_data_names_the_missing_language_and_file(tmp_path):
    with pytest.raises(ValueError, match=r"--input languages \['ko'\]: need en"):
        prepare_data({"ko": ["b"]}, tmp_path, ReadSpec(), 2)
    with pytest.raises(FileNotFoundError, match="--input en=.*nope.jsonl: no such file"):
        prepare_data({l: [str(tmp_path / "nope.jsonl")] for l in ("en", "ko", "ja", "zh")},
                     tmp_path, ReadSpec(), 2)
