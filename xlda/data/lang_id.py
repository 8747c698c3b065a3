"""Language identification for documents without (trusted) language labels.

`script`: a fast Unicode-script heuristic for en/ko/ja/zh. Hangul -> ko; kana -> ja; Han
without (enough) kana -> zh; Latin -> en. CJK characters carry about as much text as two or
three Latin letters, so they are weighted before comparing against Latin: a Korean page that is
half English UI strings by characters is still labelled ko if its Hangul dominates by content.
`lingua`: lingua-language-detector (optional dependency, imported only when asked for).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

LANG_ID_METHODS = ("field", "script", "lingua")

_HANGUL = re.compile("[\u1100-\u11ff\u3130-\u318f\ua960-\ua97f\uac00-\ud7af\ud7b0-\ud7ff]")
_KANA = re.compile("[\u3040-\u309f\u30a0-\u30ff\u31f0-\u31ff\uff66-\uff9f]")
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\U00020000-\U0002fa1f]")
_LATIN = re.compile("[A-Za-z\u00c0-\u024f]")


@dataclass(frozen=True)
class ScriptCounts:
    hangul: int
    kana: int
    han: int
    latin: int


def script_counts(text: str, max_chars: int = 20000) -> ScriptCounts:
    # A prefix is enough to decide and keeps lang-id cheap next to tokenization on long docs.
    t = text[:max_chars]
    return ScriptCounts(
        len(_HANGUL.findall(t)), len(_KANA.findall(t)), len(_HAN.findall(t)), len(_LATIN.findall(t))
    )


@dataclass(frozen=True)
class ScriptLangID:
    """Label by dominant script.

    cjk_weight: how many Latin letters one CJK character counts as.
    min_share: the winning label's weighted share of all counted letters must be at least this,
      else the text is too mixed to call and `detect` returns None.
    min_kana_ratio: kana / (kana + han) at or above this makes CJK text Japanese rather than
      Chinese (Japanese prose is typically 30-70% kana; Chinese has none).
    min_letters: fewer counted letters than this -> None (digits/punctuation only).
    """

    cjk_weight: float = 2.5
    min_share: float = 0.4
    min_kana_ratio: float = 0.1
    min_letters: int = 1

    def detect(self, text: str) -> str | None:
        return self.detect_scored(text)[0]

    def detect_scored(self, text: str) -> tuple[str | None, float]:
        """(label or None, the winning label's weighted share of the counted letters in [0, 1])."""
        c = script_counts(text)
        if c.hangul + c.kana + c.han + c.latin < self.min_letters:
            return None, 0.0
        w = self.cjk_weight
        scores = {"en": float(c.latin), "ko": w * c.hangul}
        han_kana = c.kana + c.han
        if han_kana:
            ja = c.kana >= self.min_kana_ratio * han_kana
            scores["ja" if ja else "zh"] = w * han_kana
        total = sum(scores.values())
        # Ties resolve in the fixed order en, ko, ja/zh (max keeps the first maximum).
        lang = max(scores, key=scores.get)
        share = scores[lang] / total
        return (lang if scores[lang] >= self.min_share * total else None), share


class LinguaLangID:
    """lingua-language-detector restricted to `languages` (ISO 639-1 codes)."""

    def __init__(self, languages=("en", "ko", "ja", "zh")):
        try:
            from lingua import IsoCode639_1, LanguageDetectorBuilder
        except ImportError as e:  # optional dependency
            raise RuntimeError(
                "--lang-id lingua needs lingua-language-detector: pip install lingua-language-detector "
                "(or pip install xlda[lingua]); or use --lang-id script"
            ) from e
        codes = []
        for lang in languages:
            try:
                codes.append(IsoCode639_1.from_str(lang))
            except Exception as e:
                raise ValueError(f"--lang-id lingua: {lang!r} is not an ISO 639-1 code lingua knows") from e
        if len(codes) < 2:
            raise ValueError("--lang-id lingua needs at least two candidate languages (--languages)")
        self._det = LanguageDetectorBuilder.from_iso_codes_639_1(*codes).build()

    def detect(self, text: str) -> str | None:
        r = self._det.detect_language_of(text[:20000])
        return None if r is None else r.iso_code_639_1.name.lower()

    def detect_scored(self, text: str) -> tuple[str | None, float]:
        """(label or None, lingua's confidence of that label in [0, 1])."""
        vals = self._det.compute_language_confidence_values(text[:20000])
        if not vals or vals[0].value <= 0.0:
            return None, 0.0
        return vals[0].language.iso_code_639_1.name.lower(), float(vals[0].value)


def build_lang_id(method: str, languages=None):
    """A detector with `.detect(text) -> code | None`, or None for `field` (labels only)."""
    if method == "field":
        return None
    if method == "script":
        return ScriptLangID()
    if method == "lingua":
        return LinguaLangID(languages or ("en", "ko", "ja", "zh"))
    raise ValueError(f"--lang-id {method!r}: use one of {', '.join(LANG_ID_METHODS)}")


def normalize_lang(value) -> str | None:
    """'en', 'EN', 'en-US', 'zh_CN' -> ISO 639-1 base code; anything unusable -> None."""
    if not isinstance(value, str):
        return None
    v = value.strip().lower().replace("_", "-").split("-")[0]
    return v or None
