"""The ablation's data: a page-level held-out split of the parallel LibreOffice help corpus.

The en/ko/ja/zh help sets translate the same pages (same path after ``lo/<locale>/``), so a
held-out Korean page's English translation in training would leak its content. Held-out pages
are therefore chosen by page key and removed from training in EVERY language. Documents whose
script does not match their label (the ko/ja/zh sets are partly untranslated English) are dropped
(xlda.data.lang_id's script heuristic), so "Korean" loss measures Korean text.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from xlda.data.lang_id import ScriptLangID

LANGS = ("en", "ko", "ja", "zh")


def page_key(doc_id: str) -> str:
    """``lo/ko/text/sbasic/x.html`` -> ``text/sbasic/x.html`` (shared by all translations)."""
    parts = doc_id.split("/", 2)
    if len(parts) < 3 or parts[0] != "lo":
        raise ValueError(f"document id {doc_id!r}: expected 'lo/<locale>/<path>' "
                         f"(LibreOffice help corpus)")
    return parts[2]


def _rank(key: str) -> str:
    # A seed-free, order-free ranking: the held-out set never depends on file order or seeds.
    return hashlib.sha1(key.encode()).hexdigest()


def read_docs(path: Path, lang: str) -> list[dict]:
    """Documents of one corpus file labelled ``lang`` whose dominant script is ``lang``'s."""
    lid = ScriptLangID()
    out = []
    with gzip.open(path, "rt", encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            try:
                d = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}:{line_no}: not JSON ({e})") from None
            if d.get("lang") == lang and lid.detect(d["text"]) == lang:
                out.append(d)
    return out


@dataclass
class Split:
    train: dict  # {lang: [doc, ...]}
    heldout: dict  # {lang: [doc, ...]}, the same pages in every language
    heldout_pages: list


def split_pages(docs: dict, heldout_pages: int, train_docs: dict) -> Split:
    """Pick ``heldout_pages`` pages present (in the right script) in every language, by hash
    rank; train on the first ``train_docs[lang]`` remaining documents of each language."""
    keys = {lang: {page_key(d["id"]): d for d in ds} for lang, ds in docs.items()}
    common = set.intersection(*(set(k) for k in keys.values()))
    if len(common) < heldout_pages:
        raise ValueError(f"only {len(common)} pages exist in all of {list(docs)} (after the "
                         f"script filter); ask for fewer held-out pages (--heldout-pages)")
    held = sorted(sorted(common, key=_rank)[:heldout_pages])
    held_set = set(held)
    heldout = {lang: [keys[lang][k] for k in held] for lang in docs}
    train = {}
    for lang, ds in docs.items():
        rest = [d for d in ds if page_key(d["id"]) not in held_set]
        train[lang] = rest[:train_docs[lang]]
    return Split(train, heldout, held)


def write_jsonl(docs: list[dict], path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps(d, ensure_ascii=False) + "\n")
    tmp.rename(path)
    return path


def prepare_data(corpus: Path, work: Path, langs, heldout_pages: int, train_docs: dict,
                 log=print) -> dict:
    """Build (or reuse) split -> tokenizer -> indexed datasets under ``work``; returns paths.

    Everything depends only on the arguments, so it is cached in a directory named for them.
    """
    from xlda import demo  # the demo's tokenizer/preprocess steps (the project's own tools)

    tag = "_".join(f"{l}{train_docs[l]}" for l in langs) + f"_h{heldout_pages}"
    root = work / f"data_{tag}"
    done = root / "prepared.json"
    if done.exists():
        log(f"[ablation] reusing prepared data {root}")
        return json.loads(done.read_text())
    root.mkdir(parents=True, exist_ok=True)
    log(f"[ablation] reading {corpus} ({', '.join(langs)}), script-filtered")
    docs = {l: read_docs(corpus / f"libreoffice_help.{l}.jsonl.gz", l) for l in langs}
    sp = split_pages(docs, heldout_pages, train_docs)
    for l in langs:
        log(f"[ablation]   {l}: {len(docs[l])} docs in script; train {len(sp.train[l])}, "
            f"held-out {len(sp.heldout[l])}")
    train_files = {l: write_jsonl(sp.train[l], root / "corpus" / "train" / f"{l}.jsonl.gz")
                   for l in langs}
    held_files = {l: write_jsonl(sp.heldout[l], root / "corpus" / "heldout" / f"{l}.jsonl.gz")
                  for l in langs}
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    if set(demo.LANGS) - set(langs):  # the demo's tokenizer step wants all four languages
        raise ValueError(f"langs must include {list(demo.LANGS)} (the tokenizer's languages)")
    step_log = lambda msg: log(f"[ablation] {msg}")  # noqa: E731 - the demo's steps, our prefix
    tok = demo.build_tokenizer(train_files, root / "tokenizer", logs, log=step_log)
    prefixes = {}
    for name, files in (("train", train_files), ("heldout", held_files)):
        prefix = root / "indexed" / name
        demo.preprocess(files, tok, prefix, logs, log=step_log, log_name=f"preprocess_{name}.log")
        manifest = json.loads(Path(str(prefix) + ".manifest.json").read_text())
        prefixes[name] = {l: manifest["languages"][l]["prefix"] for l in langs}
    out = {
        "tokenizer": str(tok), **prefixes, "heldout_pages": sp.heldout_pages,
        "train_ids": {l: [d["id"] for d in sp.train[l]] for l in langs},
        "heldout_ids": {l: [d["id"] for d in sp.heldout[l]] for l in langs},
    }
    done.write_text(json.dumps(out, indent=1))
    return out
