"""Exact behaviour of the extension BPE and helpers on hand-built cases."""
import pytest
from hypothesis import given, settings, strategies as st
from tokenizers import Tokenizer, models

from xlda.tokenizer_build.corpus import Doc, read_docs, split_heldout
from xlda.tokenizer_build.extend import learn_extension, require
from xlda.tokenizer_build.scripts import BYTE_TO_CHAR, target_runs, token_bytes, token_script
from xlda.tokenizer_build.train import combine, check_extension, new_tokenizer


def bl(s: str) -> str:
    """Byte-level spelling of a string."""
    return "".join(BYTE_TO_CHAR[b] for b in s.encode())


def bytes_only_tokenizer() -> Tokenizer:
    tok = new_tokenizer()
    vocab = {BYTE_TO_CHAR[b]: i for i, b in enumerate(range(256))}
    tok.model = models.BPE(vocab=vocab, merges=[])
    return tok


def test_learn_extension_exact_merges():
    base = bytes_only_tokenizer()
    # Runs: "가가", " 가가", " 나" (Latin text is not Hangul and is ignored).
    ext = learn_extension(base, set(base.get_vocab()), ["가가 가가 나 hello hello"], "ko", 10, 2, progress=False)
    g = "가".encode()  # EA B0 80
    c = [BYTE_TO_CHAR[b] for b in g]
    # (B0,80) and (EA,B0) tie at 4; ties go to the smaller pair of strings: '°' < 'ê'.
    assert ext.merges == [(c[1], c[2]), (c[0], c[1] + c[2]), (bl("가"), bl("가"))]
    assert ext.exhausted and ext.runs == 3 and ext.chars == 5
    assert ext.tokens() == [c[1] + c[2], bl("가"), bl("가가")]
    with pytest.raises(ValueError, match=r"ko: requested 10 new tokens.*supports only 3.*--extend-tokens ko=3"):
        require(ext, 10, 2)
    require(ext, 3, 2)


def test_combine_appends_after_base_and_encodes_with_new_tokens():
    base = bytes_only_tokenizer()
    ext = learn_extension(base, set(base.get_vocab()), ["가가 가가 나"], "ko", 3, 2, progress=False)
    tok = combine(base, [(ext, 2)])
    check_extension(base, tok, 2)
    assert tok.get_vocab()[bl("가")] == 257
    assert tok.encode("가나").tokens == [bl("가")] + [BYTE_TO_CHAR[b] for b in "나".encode()]
    with pytest.raises(AssertionError, match="expected 256 \\+ 3"):
        check_extension(base, tok, 3)


def test_existing_token_is_banned_not_counted():
    base = bytes_only_tokenizer()
    c = [BYTE_TO_CHAR[b] for b in "가".encode()]
    vocab = set(base.get_vocab()) | {c[1] + c[2]}  # pretend the vocab already has this token
    ext = learn_extension(base, vocab, ["가가 가가"], "ko", 10, 2, progress=False)
    assert (c[1], c[2]) not in ext.merges
    assert all(a + b not in vocab for a, b in ext.merges)


def test_target_runs_and_scripts():
    assert target_runs("LibreOffice에서 파일을 (F) 열고", "ko") == ["에서", " 파일을", " 열고"]
    assert target_runs("ファイルを開く file 文件", "ja") == ["ファイルを開く", " 文件"]
    assert target_runs("打开文件 open ファイル", "zh") == ["打开文件"]
    assert [token_script(bl(s)) for s in (" the", "한국", "文件", "ファイル", " 12,", "é")] == \
        ["Latin", "Hangul", "Han", "Kana", "other", "Latin"]
    assert token_script(bl("가")[:2]) == "other"  # partial UTF-8
    assert token_bytes(bl("가")) == "가".encode()
    with pytest.raises(ValueError, match="no target script known for language 'xx'"):
        target_runs("x", "xx")


def test_split_heldout_exact_and_deterministic():
    docs = [Doc(str(i), "en", "t") for i in range(20)]
    tr, ho = split_heldout(docs, 0.1, 7)
    assert len(ho) == 2 and len(tr) == 18 and set(tr).isdisjoint(ho)
    assert split_heldout(docs, 0.1, 7) == (tr, ho)
    assert split_heldout(docs, 0.0, 7) == (docs, [])
    assert len(split_heldout(docs[:1], 0.5, 7)[0]) == 1  # never holds out every document
    with pytest.raises(ValueError, match="heldout-fraction"):
        split_heldout(docs, 1.0, 7)


def test_read_docs_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.jsonl"):
        read_docs(tmp_path / "nope.jsonl")
    p = tmp_path / "bad.jsonl"
    p.write_text('{"id": "a", "lang": "ko", "text": "x"}\n{not json\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: not valid JSON"):
        read_docs(p)
    p.write_text('{"id": "a", "text": 3}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:1: expected an object with a string 'text'"):
        read_docs(p)


@settings(max_examples=60, deadline=None)
@given(st.text(max_size=40))
def test_extension_is_lossless_on_any_text(text):
    base = bytes_only_tokenizer()
    ext = learn_extension(base, set(base.get_vocab()), ["가가 가가 나 나나 나나"], "ko", 4, 2, progress=False)
    tok = combine(base, [(ext, len(ext.merges))])
    assert tok.decode(tok.encode(text).ids, skip_special_tokens=False) == text
