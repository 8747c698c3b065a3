import hashlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.data.fixtures import train_sentencepiece, train_test_tokenizer, word_level_tokenizer
from xlda.data.tokenizer import EOD_CANDIDATES, TokenizerError, build_tokenizer


def test_word_level_exact_ids_and_identity(tmp_path):
    path = word_level_tokenizer(tmp_path, ["hello", "world", "안녕"])
    tok = build_tokenizer("HuggingFaceTokenizer", path)
    # ids: <|endoftext|>=0, [UNK]=1, hello=2, world=3, 안녕=4
    assert tok.tokenize("hello world 안녕 nope") == [2, 3, 4, 1]
    assert tok.eod == 0
    assert tok.vocab_size == 5
    assert tok.detokenize([2, 3]) == "hello world"
    ident = tok.identity()
    assert ident == {
        "type": "HuggingFaceTokenizer",
        "path": str(path.resolve()),
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
        "vocab_size": 5,
        "eod": 0,
    }


@pytest.mark.parametrize("special,expected", [("</s>", 0), ("<eos>", 0)])
def test_other_eod_spellings(tmp_path, special, expected):
    tok = build_tokenizer("HuggingFaceTokenizer", word_level_tokenizer(tmp_path, ["a"], specials=(special,)))
    assert tok.eod == expected


def test_eod_prefers_endoftext(tmp_path):
    path = word_level_tokenizer(tmp_path, ["a"], specials=("</s>", "<|endoftext|>"))
    assert build_tokenizer("HuggingFaceTokenizer", path).eod == 1


def test_missing_eod_names_candidates(tmp_path):
    path = word_level_tokenizer(tmp_path, ["a"], specials=())
    with pytest.raises(TokenizerError) as e:
        build_tokenizer("HuggingFaceTokenizer", path)
    for cand in EOD_CANDIDATES:
        assert cand in str(e.value)
    assert str(path) in str(e.value)


def test_missing_and_unreadable_model(tmp_path):
    with pytest.raises(TokenizerError, match="file not found"):
        build_tokenizer("HuggingFaceTokenizer", tmp_path / "nope.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(TokenizerError, match="cannot load as a HuggingFace"):
        build_tokenizer("HuggingFaceTokenizer", bad)
    with pytest.raises(TokenizerError, match="cannot load as a SentencePiece"):
        build_tokenizer("SentencePieceTokenizer", bad)
    with pytest.raises(TokenizerError, match="not supported"):
        build_tokenizer("GPT2BPETokenizer", bad)


def test_sentencepiece(tmp_path):
    texts = ["hello world this is a test", "the quick brown fox", "안녕하세요 세계"] * 30
    tok = build_tokenizer("SentencePieceTokenizer", train_sentencepiece(tmp_path, texts, vocab_size=60))
    assert tok.eod == 1
    assert tok.vocab_size == 60
    ids = tok.tokenize("hello world")
    assert ids and all(0 <= i < 60 for i in ids)
    assert tok.detokenize(ids) == "hello world"
    assert tok.identity()["type"] == "SentencePieceTokenizer"


@pytest.fixture(scope="module")
def bpe(tmp_path_factory, corpus):
    return build_tokenizer("HuggingFaceTokenizer", train_test_tokenizer(tmp_path_factory.mktemp("tok"), 1000, corpus))


def test_trained_bpe_has_eod(bpe):
    assert bpe.eod == 0 and bpe.vocab_size == 1000


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.text(min_size=0, max_size=200))
def test_byte_level_round_trip(bpe, text):
    # Byte-level BPE is lossless on any Unicode text.
    assert bpe.detokenize(bpe.tokenize(text)) == text
