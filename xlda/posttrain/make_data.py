"""Small real post-training data from any per-language JSONL corpus (no downloads): question /
answer conversations built from documents, and preference pairs whose rejected answer is the
same document in another language (documents that share a ``--group-key`` translate each
other) or, where a document has no translation, the chosen answer with its words shuffled.

A document's first non-empty line (after an optional header, ``header_end``) is its title, the
following lines its body. The question asks about the title in the document's language, the
answer is the first body lines (up to ``max_answer_chars``); a second turn ("tell me more")
answers with the next lines. The prompts name no corpus. Deterministic from ``seed``;
train/valid split by a hash of the document's group (so translations land in one split).

RLVR prompts (``rlvr.{train,valid}.jsonl``) are verifiable by construction: additions of two
numbers asked in each language, the answer (the sum) in ``answer``, the model asked to box it
(``\\boxed{}``, read by the ``accuracy`` and ``format`` rewards).

With no inputs, the bundled LibreOffice help corpus is read through a preset (``BUNDLED``):
its four files, the page path in ``id`` as the group, its navigation header skipped.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from xlda.data.jsonl import json_lines

QUESTION = {
    "en": 'What does the document "{t}" say?',
    "ko": '"{t}" 문서의 내용을 설명해 주세요.',
    "ja": "「{t}」という文書には何が書かれていますか?",
    "zh": "文档“{t}”讲了什么?",
}
MORE = {"en": "Tell me more.", "ko": "더 알려 주세요.", "ja": "もっと教えてください。",
        "zh": "请再多说一些。"}
SYSTEM = {"en": "You answer questions about documents, in the language of the question.",
          "ko": "문서에 관한 질문에 질문의 언어로 답합니다.",
          "ja": "文書についての質問に、質問と同じ言語で答えます。",
          "zh": "你用提问的语言回答关于文档的问题。"}

ADD = {"en": "What is {a} + {b}? Put the final answer in \\boxed{{}}.",
       "ko": "{a} 더하기 {b}는 얼마입니까? 최종 답을 \\boxed{{}} 안에 쓰세요.",
       "ja": "{a} 足す {b} はいくつですか?最終的な答えを \\boxed{{}} の中に書いてください。",
       "zh": "{a} 加 {b} 等于多少?请把最终答案写在 \\boxed{{}} 中。"}
RLVR_PER_LANG = 100  # prompts per language


def rlvr_prompts(langs, seed: int, valid_percent: int, per_lang: int = RLVR_PER_LANG) -> dict:
    """{"rlvr.train": [...], "rlvr.valid": [...]}: additions of two 1-3 digit numbers per
    language (languages without a phrasing of their own are asked in English)."""
    rng = random.Random(seed + 1)
    out = {"rlvr.train": [], "rlvr.valid": []}
    for lang in langs:
        ask = lang if lang in ADD else "en"
        for _ in range(per_lang):
            a, b = rng.randrange(1, 1000), rng.randrange(1, 1000)
            split = _split(f"{lang}:{a}+{b}", valid_percent)
            out[f"rlvr.{split}"].append({"prompt": ADD[ask].format(a=a, b=b),
                                        "answer": str(a + b), "lang": lang})
    return out


class MakeDataError(ValueError):
    """Bad input: the message names the file, the line or the flag."""


@dataclass
class Spec:
    """How to read the input records."""
    text_key: str = "text"
    group_key: Optional[str] = None  # records with the same group translate each other
    group_pattern: Optional[str] = None  # regex; its first group is the group id
    header_end: Optional[str] = None  # a line containing it (in the first 8) ends a header


# The bundled corpus: "LibreOffice 7.4 Help / Module / Contents / Index 🔎︎ / <title> / <body>",
# the same page in every language under id "lo/<locale>/<path>".
BUNDLED = {"files": {lang: f"libreoffice_help.{lang}.jsonl.gz" for lang in ("en", "ko", "ja", "zh")},
           "spec": Spec(group_key="id", group_pattern=r"^[^/]+/[^/]+/(.+)$", header_end="🔎")}


@dataclass
class Page:
    key: str  # the group: the same document in every language
    lang: str
    title: str
    lines: list


def parse_page(text: str, lang: str, key: str, header_end: Optional[str] = None):
    lines = [x.strip() for x in text.split("\n")]
    start = 0
    if header_end is not None:
        try:
            start = next(i for i, x in enumerate(lines[:8]) if header_end in x) + 1
        except StopIteration:
            return None
    body = [x for x in lines[start:] if x]
    if len(body) < 3:
        return None
    return Page(key, lang, body[0], body[1:])


def _take(lines: list, start: int, max_chars: int) -> tuple[str, int]:
    out, n, i = [], 0, start
    while i < len(lines) and (not out or n + len(lines[i]) <= max_chars):
        out.append(lines[i])
        n += len(lines[i]) + 1
        i += 1
    return "\n".join(out), i


def read_pages(inputs: dict, spec: Spec, per_lang: int = 200) -> tuple[dict, dict]:
    """({lang: [Page]} of the first ``per_lang`` usable documents per language, counts of the
    records skipped per reason). A malformed line or a missing key stops with its path:line."""
    pattern = re.compile(spec.group_pattern) if spec.group_pattern else None
    out, skipped = {}, {"too_short": 0}
    for lang, paths in inputs.items():
        pages = []
        for path in paths:
            for where, rec, err in json_lines(path):
                if len(pages) >= per_lang:
                    break
                if err is not None:
                    raise MakeDataError(f"{where}: {err}")
                if not isinstance(rec, dict) or not isinstance(rec.get(spec.text_key), str):
                    raise MakeDataError(f"{where}: no string field {spec.text_key!r} "
                                        f"(--text-key)")
                key = f"{lang}:{where}"  # no group: a document of its own
                if spec.group_key is not None:
                    g = rec.get(spec.group_key)
                    if not isinstance(g, (str, int)) or g == "":
                        raise MakeDataError(f"{where}: no field {spec.group_key!r} (--group-key)")
                    key = str(g)
                    if pattern is not None:
                        m = pattern.search(key)
                        if m is None:
                            raise MakeDataError(f"{where}: {spec.group_key} {key!r} does not "
                                                f"match --group-pattern {spec.group_pattern!r}")
                        key = m.group(1) if m.groups() else m.group(0)
                p = parse_page(rec[spec.text_key], lang, key, spec.header_end)
                if p is None:
                    skipped["too_short"] += 1
                else:
                    pages.append(p)
        out[lang] = pages
    return out, skipped


def _split(key: str, valid_percent: int) -> str:
    h = int(hashlib.sha256(key.encode()).hexdigest()[:8], 16) % 100
    return "valid" if h < valid_percent else "train"


def make(inputs: dict, out_dir, spec: Spec = Spec(), per_lang: int = 200, seed: int = 1234,
         max_answer_chars: int = 400, valid_percent: int = 10) -> dict:
    """Write sft.{train,valid}.jsonl, dpo.{train,valid}.jsonl (and rlvr.*) under ``out_dir`` from
    ``inputs`` ({lang: [paths]}); returns the record counts. Languages without prompts of their
    own (en/ko/ja/zh have them) are asked in English."""
    rng = random.Random(seed)
    pages, _ = read_pages(inputs, spec, per_lang=per_lang)
    by_key = {}
    for lang, ps in pages.items():
        for p in ps:
            by_key.setdefault(p.key, {})[lang] = p
    out = {f"{k}.{s}": [] for k in ("sft", "dpo") for s in ("train", "valid")}
    for lang in inputs:
        ask = lang if lang in QUESTION else "en"
        for p in pages[lang]:
            split = _split(p.key, valid_percent)
            q = QUESTION[ask].format(t=p.title)
            answer, nxt = _take(p.lines, 0, max_answer_chars)
            msgs = [{"role": "user", "content": q}, {"role": "assistant", "content": answer}]
            if rng.random() < 0.3:
                msgs.insert(0, {"role": "system", "content": SYSTEM[ask]})
            if nxt < len(p.lines) and rng.random() < 0.5:
                more = _take(p.lines, nxt, max_answer_chars)[0]
                msgs += [{"role": "user", "content": MORE[ask]},
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
    out.update(rlvr_prompts(list(inputs), seed, valid_percent))
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, recs in out.items():
        tmp = out_dir / f".{name}.jsonl.tmp"
        tmp.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in recs),
                       encoding="utf-8")
        tmp.replace(out_dir / f"{name}.jsonl")
    return {name: len(recs) for name, recs in out.items()}


def bundled_inputs(corpus_dir) -> dict:
    return {lang: [str(Path(corpus_dir) / f)] for lang, f in BUNDLED["files"].items()}
