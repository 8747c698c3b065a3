import gzip
import json

import pytest

from xlda.data.lang_id import LinguaLangID, ScriptLangID, build_lang_id, normalize_lang, script_counts


@pytest.mark.parametrize(
    "text,lang",
    [
        ("Hello world, this is English.", "en"),
        ("대화 상자에 추가하는 콘트롤의 속성을 설정할 수 있습니다.", "ko"),
        ("ダイアログ上に配置したコントロールについては、各種のプロパティ設定が行えます。", "ja"),
        ("您可以设置添加到对话框中的控件的属性。", "zh"),
        ("表計算", "zh"),  # Han only: no kana, so the heuristic cannot tell it is Japanese
        ("12345 !!! 🔎︎", None),
        ("", None),
        # Korean by content although Latin letters outnumber Hangul characters (29 vs 14).
        ("LibreOffice Basic dialogs 대화 상자 편집기에서 콘트롤의 속성 변경", "ko"),
    ],
)
def test_script_labels(text, lang):
    assert ScriptLangID().detect(text) == lang


def test_script_counts():
    assert script_counts("ab 가나 かカ 漢") == script_counts("ab가나かカ漢")
    c = script_counts("ab 가나 かカ 漢")
    assert (c.latin, c.hangul, c.kana, c.han) == (2, 2, 2, 1)


def _doc(corpus, lang, doc_id):
    with gzip.open(corpus / f"libreoffice_help.{lang}.jsonl.gz", "rt", encoding="utf-8") as f:
        for line in f:
            d = json.loads(line)
            if d["id"] == doc_id:
                return d["text"]
    raise AssertionError(f"{doc_id} not in corpus")


@pytest.mark.parametrize(
    "lang,locale,page,expected",
    [
        ("en", "en-US", "control_properties", "en"),
        ("ko", "ko", "control_properties", "ko"),
        ("ja", "ja", "control_properties", "ja"),
        ("zh", "zh-CN", "control_properties", "zh"),
        # Untranslated pages of the ko/ja/zh packages are English by content.
        ("ko", "ko", "access2base", "en"),
        ("ja", "ja", "access2base", "en"),
        ("zh", "zh-CN", "access2base", "en"),
    ],
)
def test_script_on_real_corpus(corpus, lang, locale, page, expected):
    text = _doc(corpus, lang, f"lo/{locale}/text/sbasic/guide/{page}.html")
    assert ScriptLangID().detect(text) == expected


def test_lingua():
    det = LinguaLangID(("en", "ko", "ja", "zh"))
    assert det.detect("The quick brown fox jumps over the lazy dog.") == "en"
    assert det.detect("대화 상자에 추가하는 콘트롤의 속성을 설정할 수 있습니다.") == "ko"
    assert det.detect("ダイアログ上に配置したコントロールについては、各種のプロパティ設定が行えます。") == "ja"
    assert det.detect("您可以设置添加到对话框中的控件的属性。") == "zh"
    with pytest.raises(ValueError, match="at least two"):
        LinguaLangID(("en",))


def test_build_and_normalize():
    assert build_lang_id("field") is None
    assert isinstance(build_lang_id("script"), ScriptLangID)
    with pytest.raises(ValueError, match="--lang-id"):
        build_lang_id("magic")
    assert [normalize_lang(x) for x in ("en", "EN", "en-US", "zh_CN", " ko ", "", None, 3)] == [
        "en", "en", "en", "zh", "ko", None, None, None,
    ]
