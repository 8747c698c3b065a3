"""A small real corpus with planted documents whose fate is known, for the curation tests.

Real text: the first documents of ../shared/corpus/libreoffice_help.<lang>.jsonl.gz (read in
place). Planted: hand-written clean prose per language, boilerplate variants of it (each
dropped by a known filter), wrong-language and unidentifiable documents, exact copies and
near-duplicates (Jaccard 0.8-0.95 on the language's own MinHash shingles) of real documents
that pass the filters, and a `score` field with many ties.
"""
from __future__ import annotations

import gzip
import itertools
import json
import random
import re
from dataclasses import dataclass, field
from pathlib import Path

from datatrove.data import Document
from datatrove.pipeline.dedup import MinhashConfig, MinhashDedupSignature

from xlda.curate.config import LanguageConfig
from xlda.curate.pipeline import HASH
from xlda.curate.steps import build_language_filters, decide
from xlda.curate.words import ScriptWordTokenizer
from xlda.data.lang_id import ScriptLangID

LANGS = ("en", "ko", "ja", "zh")
CLEAN = {
    "en": ("The committee met on Tuesday to review the budget for the coming year. Members agreed "
           "that the library should extend its opening hours, and that the city would fund two new "
           "staff positions. The chair noted that the proposal had been discussed with residents, "
           "who asked for more evening events and a quieter reading room.\nA final vote will be held "
           "next month, after the finance office has checked the figures with the auditors."),
    "ko": ("도서관 운영 위원회는 화요일에 모여 내년 예산을 검토했다. 위원들은 도서관의 개관 시간을 늘리고 "
           "시에서 새 직원 두 명의 인건비를 지원하는 데 동의했다.\n위원장은 주민들과 이 제안을 논의했으며, "
           "주민들은 저녁 행사와 조용한 열람실을 더 원한다고 말했다. 최종 표결은 다음 달에 열린다."),
    "ja": ("図書館の運営委員会は火曜日に集まり、来年の予算を検討した。委員たちは開館時間を延ばし、"
           "市が新しい職員二人の人件費を負担することに同意した。\n委員長は住民とこの提案について話し合ったと述べ、"
           "住民は夜の催しと静かな閲覧室を望んでいると説明した。最終的な採決は来月に行われる。"),
    "zh": ("图书馆管理委员会在周二开会，审查了明年的预算。委员们同意延长图书馆的开放时间，并由市政府"
           "负担两名新员工的工资。\n主席说他已经和居民讨论了这项提议，居民希望有更多晚间活动和一个安静的阅览室。"
           "最终的表决将在下个月举行，在财务部门和审计人员核对数字之后。"),
}
CYRILLIC = "Съешь же ещё этих мягких французских булок, да выпей же чаю. " * 4


def sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.。])\s*", text.replace("\n", " ")) if s.strip()]


def boilerplate(text: str) -> dict[str, str]:
    """Variants of clean prose, each failing one filter (the expected reasons are in the tests)."""
    s = sentences(text)
    return {
        "short": s[0],
        "bullets": "\n".join("• " + x for x in s),
        "repeated_line": "\n".join([s[0]] * 3 + s),
        "no_punct": "\n".join(x.rstrip(".。") for x in s),
    }


# What each variant must be dropped for, per language (hand-checked against the thresholds).
BOILERPLATE_REASON = {
    "short": "gopher_quality:gopher_short_doc",
    "bullets": "gopher_quality:gopher_too_many_bullets",
    "repeated_line": "gopher_repetition:dup_line_frac",
    "no_punct": "fineweb_quality:line_punct_ratio",
}


def shingler(lang: str) -> MinhashDedupSignature:
    mh = LanguageConfig.load(lang).minhash
    cfg = MinhashConfig(n_grams=mh["n_grams"], num_buckets=mh["num_buckets"],
                        hashes_per_bucket=mh["hashes_per_bucket"], seed=mh["seed"], hash_config=HASH)
    return MinhashDedupSignature("/tmp/unused-xlda-shingles", cfg, language=ScriptWordTokenizer(lang))


def jaccard(sh: MinhashDedupSignature, a: str, b: str) -> float:
    x, y = set(sh.get_shingles(a).ravel().tolist()), set(sh.get_shingles(b).ravel().tolist())
    return len(x & y) / max(1, len(x | y))


def near_duplicate(text: str, lang: str, sh, rng: random.Random, target: float) -> tuple[str, float]:
    """Replace words (en/ko) or characters (ja/zh) with others of the same text, a few at a
    time, until the shingle Jaccard with the original first drops to <= target."""
    spans = [m.span() for m in re.finditer(r"\S+" if lang in ("en", "ko") else r"[^\s\W]", text)]
    pool = [text[a:b] for a, b in spans]
    words = list(pool)
    cur, j = text, 1.0
    while j > target:
        for _ in range(max(1, len(spans) // 400)):
            words[rng.randrange(len(spans))] = rng.choice(pool)
        pieces, last = [], 0
        for (a, b), w in zip(spans, words):
            pieces += [text[last:a], w]
            last = b
        cur = "".join(pieces + [text[last:]])
        j = jaccard(sh, text, cur)
    return cur, j


@dataclass
class Planted:
    files: list[Path]
    docs: dict = field(default_factory=dict)            # id -> record as written
    fate: dict = field(default_factory=dict)            # id -> "kept:<lang>" | "<reason>"
    near_pairs: list = field(default_factory=list)      # (orig id, variant id, jaccard, lang)
    exact_copies: list = field(default_factory=list)    # (orig id, copy id, lang)


def build(corpus: Path, out: Path, per_lang: int = 60, seed: int = 0) -> Planted:
    rng = random.Random(seed)
    out.mkdir(parents=True, exist_ok=True)
    det = ScriptLangID()
    chains = {L: build_language_filters(LanguageConfig.load(L)) for L in LANGS}
    minconf = {L: LanguageConfig.load(L).min_confidence for L in LANGS}
    p = Planted(files=[])
    for L in LANGS:
        recs = []
        with gzip.open(corpus / f"libreoffice_help.{L}.jsonl.gz", "rt", encoding="utf-8") as f:
            recs = [json.loads(line) for line in itertools.islice(f, per_lang)]
        clean_real = []
        for r in recs:
            lang, conf = det.detect_scored(r["text"])
            if lang == L and conf >= minconf[L] and decide(chains[L], Document(r["text"], r["id"])) is None:
                clean_real.append(r)
        planted = [{"id": f"planted/{L}/clean", "text": CLEAN[L], "lang": L}]
        p.fate[f"planted/{L}/clean"] = f"kept:{L}"
        for name, text in boilerplate(CLEAN[L]).items():
            pid = f"planted/{L}/{name}"
            planted.append({"id": pid, "text": text, "lang": L})
            p.fate[pid] = BOILERPLATE_REASON[name]
        sh = shingler(L)
        for k, r in enumerate(clean_real[:8]):
            text, j = near_duplicate(r["text"], L, sh, rng, rng.uniform(0.8, 0.93))
            if j >= 0.8 and decide(chains[L], Document(text, "v")) is None \
                    and det.detect_scored(text)[0] == L:
                vid = f"planted/{L}/near/{k}"
                planted.append({"id": vid, "text": text, "lang": L})
                p.near_pairs.append((r["id"], vid, j, L))
        for k, r in enumerate(clean_real[8:11]):
            cid = f"planted/{L}/copy/{k}"
            planted.append({"id": cid, "text": r["text"], "lang": L})
            p.exact_copies.append((r["id"], cid, L))
        if L == "en":  # wrong-language and unidentifiable documents in the English shard
            planted += [{"id": "planted/en/is_ko", "text": CLEAN["ko"], "lang": "en"},
                        {"id": "planted/en/cyrillic", "text": CYRILLIC, "lang": "en"},
                        {"id": "planted/en/mixed", "text": CLEAN["en"][:150] + CLEAN["ko"][:60],
                         "lang": "en"}]
            p.fate.update({"planted/en/is_ko": "kept:ko", "planted/en/cyrillic": "undetected_language",
                           "planted/en/mixed": "low_confidence"})
        rows = recs + planted
        rng.shuffle(rows)
        for r in rows:
            r["score"] = rng.randrange(6)  # many ties: the cut must still be exact
            p.docs[r["id"]] = r
        path = out / f"shard.{L}.jsonl"
        path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        p.files.append(path)
    return p


def expected_fates(p: Planted) -> dict:
    """id -> (lang, reason or "kept") for language ID + filters, decided document by document."""
    det = ScriptLangID()
    chains = {L: build_language_filters(LanguageConfig.load(L)) for L in LANGS}
    minconf = {L: LanguageConfig.load(L).min_confidence for L in LANGS}
    out = {}
    for r in p.docs.values():
        lang, conf = det.detect_scored(r["text"])
        if lang is None:
            out[r["id"]] = ("unknown", "undetected_language")
        elif conf < minconf[lang]:
            out[r["id"]] = (lang, "low_confidence")
        else:
            out[r["id"]] = (lang, decide(chains[lang], Document(r["text"], r["id"])) or "kept")
    return out


def expected_drops(p: Planted) -> dict:
    """lang -> {reason: count} for language ID + filters."""
    from collections import Counter, defaultdict

    out = defaultdict(Counter)
    for lang, reason in expected_fates(p).values():
        out[lang][reason] += 1
    return out


def read_output(folder: Path) -> list[dict]:
    rows = []
    for f in sorted(folder.glob("*")):
        if f.name.endswith(".parquet"):
            import pyarrow.parquet as pq

            rows += pq.read_table(f).to_pylist()
        elif f.name.endswith(".jsonl.gz"):
            with gzip.open(f, "rt", encoding="utf-8") as fh:
                rows += [json.loads(x) for x in fh]
    return rows
