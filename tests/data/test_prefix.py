"""The dataset name (xlda/data/prefix.py): written by preprocess, read by the run config and the
pre-flight, for every --json-keys key."""
import pytest
from hypothesis import given
from hypothesis import strategies as st

from xlda.data.prefix import DatasetPrefix, format_prefix, parse_prefix
from xlda.training.config import ConfigError, language_of_prefix


def test_format_and_parse_by_hand():
    assert format_prefix("out/corpus", "ko") == "out/corpus_ko_text_document"
    assert format_prefix("out/x_en", "ja", "title") == "out/x_en_ja_title_document"
    assert parse_prefix("out/corpus_ko_title_document") == DatasetPrefix("out/corpus", "ko", "title")
    assert parse_prefix("out/x_en_ko_text_document") == DatasetPrefix("out/x_en", "ko", "text")
    assert str(parse_prefix("a/b_zh_text_document")) == "a/b_zh_text_document"
    # a --json-keys title dataset is trainable: its language is read from the name
    assert language_of_prefix("data/wiki_ja_title_document") == "ja"


@pytest.mark.parametrize("bad", ["out/corpus.bin", "out/corpus_text_document", "out/_ko_text_document",
                                 "out/c_Korean_text_document", "out/c_ko__document"])
def test_unreadable_names_say_what_is_expected(bad):
    with pytest.raises(ValueError, match="<output-prefix>_<lang>_<json-key>_document"):
        parse_prefix(bad)
    with pytest.raises(ConfigError, match="data.paths"):
        language_of_prefix(bad)


@pytest.mark.parametrize("lang", ["../x", "ko-KR", "KO", "k"])
def test_a_language_that_is_not_a_plain_code_never_enters_a_path(lang):
    with pytest.raises(ValueError, match="not an ISO 639 code"):
        format_prefix("out/c", lang)


name = st.text("abcxyz019", min_size=1, max_size=6)


@given(st.lists(name, min_size=1, max_size=3), st.sampled_from(["en", "ko", "ja", "zh", "yue"]),
       st.text("abcdefxyz", min_size=1, max_size=8))
def test_parse_inverts_format(parts, lang, key):
    out = "dir/" + "_".join(parts)
    assert parse_prefix(format_prefix(out, lang, key)) == DatasetPrefix(out, lang, key)
