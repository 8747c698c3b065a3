"""The ablation's data: any per-language JSONL corpus, a held-out split, tokenizer, indexed data.

Input is one or more JSONL files per language (``--input ko=PATH``), one document a line with a
text field. Two ways to hold documents out:

- **aligned** (``--group-key FIELD``, optionally ``--group-pattern REGEX`` whose first group is
  the key): documents sharing a key are translations of each other. Held-out GROUPS are removed
  from training in every language, so a held-out Korean page's English translation is never
  trained on (its content would leak). The in-context transfer probe needs this alignment.
- **per language** (no key): held-out documents are drawn in each language independently.

Both draws rank by a SHA-1 of the key (or of the text), so the held-out set depends on neither file
order nor seeds. Documents whose dominant script is not their language's are dropped by default
(xlda.data.lang_id's script heuristic): in partly untranslated corpora, "Korean loss" should
measure Korean text.
"""
from __future__ import annotations

import gzip
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from xlda.data.jsonl import json_lines
from xlda.data.lang_id import ScriptLangID

LANGS = ("en", "ko", "ja", "zh")
GROUP = "_group"  # the alignment key a document carries through the split (None without a key)


def _rank(key: str) -> str:
    # A seed-free, order-free ranking: the held-out set never depends on file order or seeds.
    return hashlib.sha1(key.encode()).hexdigest()


@dataclass
class ReadSpec:
    """How to read one corpus: the text field, the alignment key, the script filter."""

    text_key: str = "text"
    group_key: Optional[str] = None
    group_pattern: Optional[str] = None  # regex; its first group is the key (whole value if none)
    script_filter: bool = True

    def __post_init__(self):
        from xlda.data.groups import GroupSpec

        if self.group_pattern and not self.group_key:
            raise ValueError("--group-pattern needs --group-key (the field it applies to)")
        # the alignment key is the packer's group (xlda.data.groups): one reading of a key
        self._group = GroupSpec(self.group_key, self.group_pattern) if self.group_key else None

    def group_of(self, doc: dict, where: str) -> Optional[str]:
        return self._group.group_of(doc, where) if self._group is not None else None


def read_docs(paths, lang: str, spec: ReadSpec = ReadSpec()) -> list[dict]:
    """Documents of ``lang`` from ``paths`` (JSONL, optionally .gz): ``{"text", GROUP}`` each,
    dropping those whose dominant script is not ``lang``'s (unless ``spec.script_filter`` is off)."""
    lid = ScriptLangID() if spec.script_filter else None
    out = []
    for path in ([paths] if isinstance(paths, (str, Path)) else paths):
        for where, d, err in json_lines(path):
            if err is not None:
                raise ValueError(f"{where}: not JSON ({err})")
            if not isinstance(d, dict) or not isinstance(d.get(spec.text_key), str):
                raise ValueError(f"{where}: expected an object with a string field "
                                 f"{spec.text_key!r} (--text-key)")
            text = d[spec.text_key]
            if not text.strip():  # preprocessing would drop it and shift the held-out keys
                continue
            if lid is not None and lid.detect(text) != lang:
                continue
            out.append({"text": text, GROUP: spec.group_of(d, where)})
    return out


@dataclass
class Split:
    train: dict  # {lang: [doc, ...]}
    heldout: dict  # {lang: [doc, ...]}
    heldout_groups: list  # aligned split: the held-out keys (a language may lack some); else []


def split_groups(docs: dict, heldout_groups: int, max_train_docs: int = 0) -> Split:
    """Hold out ``heldout_groups`` alignment groups, those present in the most languages first
    (ties by hash), and remove them from training in EVERY language. ``max_train_docs`` > 0 caps
    each language's training documents (file order kept)."""
    present: dict = {}
    for lang, ds in docs.items():
        for d in ds:
            if d[GROUP] is None:
                raise ValueError(f"{lang}: a document has no alignment key; pass --group-key")
            present.setdefault(d[GROUP], set()).add(lang)
    if heldout_groups < 1 or len(present) <= heldout_groups:
        raise ValueError(f"--heldout {heldout_groups}: {len(present)} alignment groups in "
                         f"{list(docs)}; hold out at least 1 and leave some to train on")
    held = sorted(present, key=lambda g: (-len(present[g]), _rank(g)))[:heldout_groups]
    held_set = set(held)
    # A held-out text filed under another key (a duplicate page) must not train either.
    held_text = {_rank(d["text"]) for ds in docs.values() for d in ds if d[GROUP] in held_set}
    heldout, train = {}, {}
    for lang, ds in docs.items():
        first = {}
        for d in ds:  # one document per group and language is scored (the first in file order)
            if d[GROUP] in held_set:
                first.setdefault(d[GROUP], d)
        heldout[lang] = [first[g] for g in sorted(first, key=_rank)]
        rest = [d for d in ds if d[GROUP] not in held_set and _rank(d["text"]) not in held_text]
        train[lang] = rest[:max_train_docs] if max_train_docs else rest
    return Split(train, heldout, sorted(held, key=_rank))


def split_per_language(docs: dict, heldout_docs: int, max_train_docs: int = 0) -> Split:
    """No alignment: hold out ``heldout_docs`` documents per language, ranked by a hash of their
    text (identical texts go the same way, so a duplicate cannot sit on both sides)."""
    heldout, train = {}, {}
    for lang, ds in docs.items():
        keyed = [(_rank(d["text"]), d) for d in ds]  # one hash per document
        ranked = sorted({k for k, _ in keyed})
        if heldout_docs < 1 or len(ranked) <= heldout_docs:
            raise ValueError(f"--heldout {heldout_docs}: {lang} has {len(ranked)} distinct "
                             f"documents; hold out at least 1 and leave some to train on")
        held = set(ranked[:heldout_docs])
        by_hash = {k: d for k, d in keyed if k in held}  # one document per distinct text
        heldout[lang] = [by_hash[k] for k in sorted(by_hash)]
        rest = [d for k, d in keyed if k not in held]
        train[lang] = rest[:max_train_docs] if max_train_docs else rest
    return Split(train, heldout, [])


def write_jsonl(docs: list[dict], path: Path, lang: str) -> Path:
    """Write ``docs`` as the project's JSONL (``text``, ``lang``, ``group``) atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    with gzip.open(tmp, "wt", encoding="utf-8") as f:
        for d in docs:
            f.write(json.dumps({"text": d["text"], "lang": lang, "group": d[GROUP]},
                               ensure_ascii=False) + "\n")
    tmp.rename(path)
    return path


def num_documents(prefix: str) -> int:
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    return len(IndexedDataset(prefix, multimodal=False))


def _tag(inputs: dict, spec: ReadSpec, heldout: int, max_train_docs: int) -> str:
    # The prepared data depend on the input files (path, size, mtime) and the split settings.
    h = hashlib.sha1()
    for lang in sorted(inputs):
        for p in inputs[lang]:
            st = Path(p).stat()
            h.update(f"{lang}|{Path(p).resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    h.update(json.dumps([spec.text_key, spec.group_key, spec.group_pattern, spec.script_filter,
                         heldout, max_train_docs]).encode())
    return h.hexdigest()[:12]


def prepare_data(inputs: dict, work: Path, spec: ReadSpec, heldout: int, max_train_docs: int = 0,
                 log=print) -> dict:
    """Build (or reuse) split -> tokenizer -> indexed datasets under ``work``; returns paths and
    the held-out documents' alignment keys (``heldout_groups[lang][i]`` is document i's key).

    Everything depends only on the arguments, so it is cached in a directory named for them.
    """
    from xlda import demo  # the demo's tokenizer/preprocess steps (the project's own tools)

    langs = list(inputs)
    if "en" not in langs or len(langs) < 2:  # the tokenizer extends an English base
        raise ValueError(f"--input languages {langs}: need en (the tokenizer's base) and at "
                         f"least one other language")
    inputs = {l: [Path(p) for p in (ps if isinstance(ps, (list, tuple)) else [ps])]
              for l, ps in inputs.items()}
    for lang, ps in inputs.items():
        for p in ps:
            if not p.exists():
                raise FileNotFoundError(f"--input {lang}={p}: no such file")
    root = work / f"data_{_tag(inputs, spec, heldout, max_train_docs)}"
    done = root / "prepared.json"
    if done.exists():
        log(f"[ablation] reusing prepared data {root}")
        return json.loads(done.read_text())
    root.mkdir(parents=True, exist_ok=True)
    log(f"[ablation] reading {', '.join(f'{l}={[str(p) for p in ps]}' for l, ps in inputs.items())}"
        + (" (script-filtered)" if spec.script_filter else ""))
    docs = {l: read_docs(inputs[l], l, spec) for l in langs}
    if spec.group_key:
        sp = split_groups(docs, heldout, max_train_docs)
    else:
        sp = split_per_language(docs, heldout, max_train_docs)
    for l in langs:
        log(f"[ablation]   {l}: {len(docs[l])} docs kept; train {len(sp.train[l])}, "
            f"held-out {len(sp.heldout[l])}")
    train_files = {l: write_jsonl(sp.train[l], root / "corpus" / "train" / f"{l}.jsonl.gz", l)
                   for l in langs}
    held_files = {l: write_jsonl(sp.heldout[l], root / "corpus" / "heldout" / f"{l}.jsonl.gz", l)
                  for l in langs}
    logs = root / "logs"
    logs.mkdir(exist_ok=True)
    step_log = lambda msg: log(f"[ablation] {msg}")  # noqa: E731 - the demo's steps, our prefix
    tok = demo.build_tokenizer(train_files, root / "tokenizer", logs, log=step_log)
    prefixes = {}
    for name, files in (("train", train_files), ("heldout", held_files)):
        prefix = root / "indexed" / name
        demo.preprocess(files, tok, prefix, logs, log=step_log, log_name=f"preprocess_{name}.log")
        manifest = json.loads(Path(str(prefix) + ".manifest.json").read_text())
        prefixes[name] = {l: manifest["languages"][l]["prefix"] for l in langs}
        for l in langs:  # preprocess must keep every document (the keys are positional)
            n = num_documents(prefixes[name][l])
            want = len((sp.train if name == "train" else sp.heldout)[l])
            if n != want:
                raise RuntimeError(f"preprocess kept {n} of {want} {name} documents in {l}; "
                                   f"see {logs}")
    out = {
        "tokenizer": str(tok), **prefixes, "aligned": bool(spec.group_key),
        "heldout_groups": {l: [d[GROUP] for d in sp.heldout[l]] for l in langs},
        "train_docs": {l: len(sp.train[l]) for l in langs},
        "train_groups": ({l: sorted({d[GROUP] for d in sp.train[l]}) for l in langs}
                         if spec.group_key else None),
    }
    done.write_text(json.dumps(out, indent=1))
    return out
