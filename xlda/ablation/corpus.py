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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import numpy as np

from xlda.data.jsonl import json_lines
from xlda.data.lang_id import ScriptLangID

LANGS = ("en", "ko", "ja", "zh")
GROUP = "_group"  # the alignment key a document carries through the split (None without a key)
GROUP_FIELD = "group"  # the field write_jsonl stores it in, and the packer's --xlda-affinity-key


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
    near_dup_groups: list = field(default_factory=list)  # pulled out as near copies of held-out


def split_groups(docs: dict, heldout_groups: int, max_train_docs: int = 0,
                 near_dup: float = 0.0) -> Split:
    """Hold out ``heldout_groups`` alignment groups, those present in the most languages first
    (ties by hash), and remove them from training in EVERY language. ``near_dup`` > 0: a group
    with a document whose MinHash Jaccard estimate against a held-out document of the same
    language reaches it (a near copy under another key, near_dup.py) is removed from training in
    every language too. ``max_train_docs`` > 0 caps each language's training documents (file
    order kept)."""
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
    pulled: set = set()
    if near_dup > 0:
        from xlda.ablation.near_dup import near_duplicate_pairs

        for ds in docs.values():
            h = [d for d in ds if d[GROUP] in held_set]
            t = [d for d in ds if d[GROUP] not in held_set]
            for _, j, _ in near_duplicate_pairs([d["text"] for d in h], [d["text"] for d in t],
                                                threshold=near_dup):
                pulled.add(t[j][GROUP])
    heldout, train = {}, {}
    for lang, ds in docs.items():
        first = {}
        for d in ds:  # one document per group and language is scored (the first in file order)
            if d[GROUP] in held_set:
                first.setdefault(d[GROUP], d)
        heldout[lang] = [first[g] for g in sorted(first, key=_rank)]
        rest = [d for d in ds if d[GROUP] not in held_set and d[GROUP] not in pulled
                and _rank(d["text"]) not in held_text]
        train[lang] = rest[:max_train_docs] if max_train_docs else rest
    return Split(train, heldout, sorted(held, key=_rank), sorted(pulled, key=_rank))


def _chunk_bounds(costs: list[int], max_chars: int) -> list[tuple[int, int]]:
    """Greedy runs of lines whose summed cost stays <= max_chars (a longer line is its own)."""
    out, a, acc = [], 0, 0
    for i, c in enumerate(costs):
        if i > a and acc + c > max_chars:
            out.append((a, i))
            a, acc = i, 0
        acc += c
    if a < len(costs):
        out.append((a, len(costs)))
    return out


def chunk_documents(docs: dict, max_chars: int, script_filter: bool = True) -> dict:
    """Cut every document into runs of whole lines of at most ``max_chars`` characters.

    Where all of a group's language versions have the same number of lines (translated line by
    line, as the bundled help pages mostly are), the cut points are shared, set by the longest
    version of each line, and chunk k of every language gets the group ``<group>#k``: chunks
    that translate each other stay aligned, for the probe and the packer's affinity. Otherwise
    each version is cut on its own and its chunks get ``<group>#<lang>k`` (aligned with
    nothing). Chunks that are blank, or whose dominant script is not their language's, are
    dropped (as read_docs drops documents)."""
    lid = ScriptLangID() if script_filter else None
    first: dict = {}
    for lang, ds in docs.items():
        for d in ds:
            if d[GROUP] is not None:
                first.setdefault(d[GROUP], {}).setdefault(lang, d["text"].split("\n"))
    shared = {}
    for g, versions in first.items():
        counts = {len(v) for v in versions.values()}
        if len(versions) > 1 and len(counts) == 1:
            costs = [max(len(v[i]) + 1 for v in versions.values()) for i in range(counts.pop())]
            shared[g] = _chunk_bounds(costs, max_chars)
    out = {}
    for lang, ds in docs.items():
        chunks = []
        for d in ds:
            lines = d["text"].split("\n")
            g = d[GROUP]
            if g in shared and len(lines) == shared[g][-1][1]:
                parts = [(f"{g}#{k}", lines[a:b]) for k, (a, b) in enumerate(shared[g])]
            else:
                own = _chunk_bounds([len(x) + 1 for x in lines], max_chars)
                parts = [(None if g is None else f"{g}#{lang}{k}", lines[a:b])
                         for k, (a, b) in enumerate(own)]
            for key, ls in parts:
                text = "\n".join(ls)
                if not text.strip() or (lid is not None and lid.detect(text) != lang):
                    continue
                chunks.append({"text": text, GROUP: key})
        out[lang] = chunks
    return out


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
            f.write(json.dumps({"text": d["text"], "lang": lang, GROUP_FIELD: d[GROUP]},
                               ensure_ascii=False) + "\n")
    tmp.rename(path)
    return path


def num_documents(prefix: str) -> int:
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    return len(IndexedDataset(prefix, multimodal=False))


def _tag(inputs: dict, spec: ReadSpec, heldout: int, max_train_docs: int, *extra) -> str:
    # The prepared data depend on the input files (path, size, mtime) and the split settings.
    h = hashlib.sha1()
    for lang in sorted(inputs):
        for p in inputs[lang]:
            st = Path(p).stat()
            h.update(f"{lang}|{Path(p).resolve()}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    h.update(json.dumps([spec.text_key, spec.group_key, spec.group_pattern, spec.script_filter,
                         heldout, max_train_docs, *extra]).encode())
    return h.hexdigest()[:12]


def containment_stats(held: dict, train: dict) -> dict:
    """Per language, how much of each held-out document's text (character 5-grams) occurs in
    that language's training documents: mean, median, max and the share at >= 0.5."""
    from xlda.ablation.near_dup import containment

    out = {}
    for lang in held:
        c = containment([d["text"] for d in held[lang]], [d["text"] for d in train[lang]])
        out[lang] = ({"mean": float(c.mean()), "median": float(np.median(c)),
                      "max": float(c.max()), "at_least_half": float((c >= 0.5).mean())}
                     if c.size else {})
    return out


def prepare_data(inputs: dict, work: Path, spec: ReadSpec, heldout: int, max_train_docs: int = 0,
                 log=print, near_dup: float = 0.0, chunk_chars: int = 0) -> dict:
    """Build (or reuse) split -> chunks -> tokenizer -> indexed datasets under ``work``; returns
    paths and the held-out documents' alignment keys (``heldout_groups[lang][i]`` is document
    i's key). ``near_dup`` > 0 holds near copies of held-out pages out too (split_groups);
    ``chunk_chars`` > 0 cuts documents into line runs after the split (chunk_documents), so
    whole pages stay on one side of it.

    Everything depends only on the arguments, so it is cached in a directory named for them.
    With an alignment key the indexed data carry each document's group (``group``), for the
    packer's --xlda-affinity-key.
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
    root = work / f"data_{_tag(inputs, spec, heldout, max_train_docs, near_dup, chunk_chars)}"
    done = root / "prepared.json"
    if done.exists():
        log(f"[ablation] reusing prepared data {root}")
        return json.loads(done.read_text())
    root.mkdir(parents=True, exist_ok=True)
    log(f"[ablation] reading {', '.join(f'{l}={[str(p) for p in ps]}' for l, ps in inputs.items())}"
        + (" (script-filtered)" if spec.script_filter else ""))
    docs = {l: read_docs(inputs[l], l, spec) for l in langs}
    if spec.group_key:
        sp = split_groups(docs, heldout, max_train_docs, near_dup=near_dup)
    else:
        sp = split_per_language(docs, heldout, max_train_docs)
    for l in langs:
        log(f"[ablation]   {l}: {len(docs[l])} docs kept; train {len(sp.train[l])}, "
            f"held-out {len(sp.heldout[l])}")
    if sp.near_dup_groups:
        log(f"[ablation]   {len(sp.near_dup_groups)} groups with a near copy (MinHash Jaccard "
            f">= {near_dup:g}) of a held-out document removed from training")
    contained = containment_stats(sp.heldout, sp.train)
    log("[ablation]   held-out text found in training (5-gram containment, mean/max): " + ", ".join(
        f"{l} {c['mean']:.3f}/{c['max']:.3f}" for l, c in contained.items() if c))
    pages = {"train": dict(sp.train), "heldout": dict(sp.heldout)}
    if chunk_chars > 0:
        sp = Split(chunk_documents(sp.train, chunk_chars, spec.script_filter),
                   chunk_documents(sp.heldout, chunk_chars, spec.script_filter),
                   sp.heldout_groups, sp.near_dup_groups)
        for l in langs:
            log(f"[ablation]   {l}: {len(pages['train'][l])} + {len(pages['heldout'][l])} pages "
                f"-> {len(sp.train[l])} + {len(sp.heldout[l])} chunks of <= {chunk_chars} chars")
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
        demo.preprocess(files, tok, prefix, logs, log=step_log, log_name=f"preprocess_{name}.log",
                        group_key=GROUP_FIELD if spec.group_key else None)
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
        "group_field": GROUP_FIELD if spec.group_key else None,
        "near_dup": {"threshold": near_dup, "groups_removed": len(sp.near_dup_groups)},
        "containment": contained, "chunk_chars": chunk_chars,
        "pages": {k: {l: len(v[l]) for l in langs} for k, v in pages.items()},
    }
    done.write_text(json.dumps(out, indent=1))
    return out
