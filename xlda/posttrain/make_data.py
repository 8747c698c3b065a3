"""Small real post-training data from the project's corpus (no downloads): question/answer
conversations built from LibreOffice help pages, and preference pairs whose rejected answer is
the same page in another language (the parallel translations) or, where a page has no
translation, the chosen answer with its words shuffled.

A help page reads ``LibreOffice 7.4 Help / Module / Contents / Index 🔎︎ / <title> / <body>``
(the navigation words translated);
the question asks about the title in the page's language, the answer is the first body lines
(up to ``max_answer_chars``); a second turn ("tell me more") answers with the next lines.
Deterministic from ``seed``; train/valid split by a hash of the page path.
"""
from __future__ import annotations

import gzip
import hashlib
import json
import random
from dataclasses import dataclass
from pathlib import Path

LANGS = ("en", "ko", "ja", "zh")
QUESTION = {
    "en": 'What does the LibreOffice help say about "{t}"?',
    "ko": 'LibreOffice 도움말에서 "{t}"에 대해 설명해 주세요.',
    "ja": "LibreOffice のヘルプでは「{t}」について何と説明していますか?",
    "zh": "LibreOffice 帮助中关于“{t}”是怎么说的?",
}
MORE = {"en": "Tell me more.", "ko": "더 알려 주세요.", "ja": "もっと教えてください。",
        "zh": "请再多说一些。"}
SYSTEM = {"en": "You answer questions about LibreOffice from its help pages.",
          "ko": "LibreOffice 도움말을 바탕으로 질문에 답합니다.",
          "ja": "LibreOffice のヘルプに基づいて質問に答えます。",
          "zh": "你根据 LibreOffice 帮助页面回答问题。"}
HEADER_END = "🔎"  # ends the navigation line ("Index 🔎︎", "索引 🔎︎") before the page title


@dataclass
class Page:
    key: str  # the page path without the locale: the same page in every language
    lang: str
    title: str
    lines: list


def parse_page(doc: dict):
    lines = [x.strip() for x in doc["text"].split("\n")]
    try:
        start = next(i for i, x in enumerate(lines[:8]) if HEADER_END in x) + 1
    except StopIteration:
        return None
    body = [x for x in lines[start:] if x]
    if len(body) < 3:
        return None
    parts = doc["id"].split("/")
    return Page("/".join(parts[2:]), doc["lang"], body[0], body[1:])


def _take(lines: list, start: int, max_chars: int) -> tuple[str, int]:
    out, n, i = [], 0, start
    while i < len(lines) and (not out or n + len(lines[i]) <= max_chars):
        out.append(lines[i])
        n += len(lines[i]) + 1
        i += 1
    return "\n".join(out), i


def read_pages(corpus_dir, langs=LANGS, per_lang: int = 200) -> dict:
    """{lang: [Page]} of the first ``per_lang`` usable help pages of each language."""
    out = {}
    for lang in langs:
        pages = []
        with gzip.open(Path(corpus_dir) / f"libreoffice_help.{lang}.jsonl.gz", "rt",
                       encoding="utf-8") as f:
            for line in f:
                p = parse_page(json.loads(line))
                if p is not None:
                    pages.append(p)
                if len(pages) >= per_lang:
                    break
        out[lang] = pages
    return out


def _split(key: str, valid_percent: int) -> str:
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100
    return "valid" if h < valid_percent else "train"


def make(corpus_dir, out_dir, per_lang: int = 200, seed: int = 1234, max_answer_chars: int = 400,
         valid_percent: int = 10) -> dict:
    """Write sft.{train,valid}.jsonl and dpo.{train,valid}.jsonl under ``out_dir``; returns the
    record counts."""
    rng = random.Random(seed)
    pages = read_pages(corpus_dir, per_lang=per_lang)
    by_key = {}
    for lang, ps in pages.items():
        for p in ps:
            by_key.setdefault(p.key, {})[lang] = p
    out = {f"{k}.{s}": [] for k in ("sft", "dpo") for s in ("train", "valid")}
    for lang in LANGS:
        for p in pages[lang]:
            split = _split(p.key, valid_percent)
            q = QUESTION[lang].format(t=p.title)
            answer, nxt = _take(p.lines, 0, max_answer_chars)
            msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": answer}]
            if rng.random() < 0.3:
                msgs.insert(0, {"role": "system", "content": SYSTEM[lang]})
            if nxt < len(p.lines) and rng.random() < 0.5:
                more = _take(p.lines, nxt, max_answer_chars)[0]
                msgs += [{"role": "user", "content": MORE[lang]},
                         {"role": "assistant", "content": more}]
            out[f"sft.{split}"].append({"messages": msgs, "lang": lang, "source": p.key})
            others = [o for o_lang, o in by_key[p.key].items() if o_lang != lang
                      and _take(o.lines, 0, max_answer_chars)[0] != answer]
            if others:
                rejected = _take(rng.choice(others).lines, 0, max_answer_chars)[0]
                kind = "other_language"
            else:
                words = answer.split(" ")
                rng.shuffle(words)
                rejected, kind = " ".join(words), "shuffled"
            if rejected == answer:
                continue
            out[f"dpo.{split}"].append({"prompt": q, "chosen": answer, "rejected": rejected,
                                        "lang": lang, "rejected_kind": kind, "source": p.key})
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, recs in out.items():
        tmp = out_dir / f".{name}.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs),
                       encoding="utf-8")
        tmp.replace(out_dir / f"{name}.jsonl")
    return {name: len(recs) for name, recs in out.items()}
