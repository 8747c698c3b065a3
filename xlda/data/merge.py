"""Merge preprocessed output sets (e.g. the shards of an array job) language by language.

Each input is an output set of tools/preprocess_data.py: `<prefix>.manifest.json` and its
`<prefix>_<lang>_<key>_document.{bin,idx}` (and, with --group-key, its documents' groups,
`.group-<FIELD>.npy`). For every language and key, the inputs' datasets are concatenated in input order with megatron-core's IndexedDatasetBuilder.add_index (as Megatron-LM's
tools/merge_datasets.py does), and one manifest describes the result. Inputs made with different
tokenizers (or dtypes, keys, EOD settings) are refused: their token ids mean different things.
The output set appears only when complete (xlda.data.outputs).
"""
from __future__ import annotations

import glob
import json
import os
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xlda.data.groups import groups_path, read_groups
from xlda.data.outputs import OutputSet, PrefixLock, PreprocessError, dataset_prefix, io_error, remove_stale_temps

# Manifest fields that must agree between inputs, and what a mismatch means.
_MUST_AGREE = {
    "dtype": "token dtype",
    "json_keys": "--json-keys",
    "append_eod": "--append-eod",
    "group_key": "--group-key",  # the documents' groups (xlda.data.groups) are merged too
    "group_pattern": "--group-pattern",
}


def _manifest_file(arg: str) -> list[str]:
    """An input argument -> manifest files: a manifest, an output prefix, or a directory of them."""
    if os.path.isdir(arg):
        found = sorted(glob.glob(os.path.join(glob.escape(arg), "*.manifest.json")))
        if not found:
            raise PreprocessError(f"--input {arg}: the directory holds no *.manifest.json")
        return found
    path = arg if arg.endswith(".manifest.json") else f"{arg}.manifest.json"
    if not os.path.isfile(path):
        raise PreprocessError(f"--input {arg}: {path} not found (give manifests, output prefixes or a directory)")
    return [path]


def _load(path: str) -> dict:
    try:
        m = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise PreprocessError(f"{path}: not a readable manifest ({e})") from None
    if not isinstance(m, dict) or not isinstance(m.get("languages"), dict) or not isinstance(m.get("tokenizer"), dict):
        raise PreprocessError(f"{path}: not a preprocess manifest (no 'tokenizer' and 'languages')")
    m.setdefault("json_keys", [m.get("json_key", "text")])
    return m


def _tokenizer_id(m: dict) -> tuple:
    t = m["tokenizer"]
    return t.get("type"), t.get("sha256"), t.get("vocab_size")


def _check_compatible(paths: list[str], manifests: list[dict]) -> None:
    ref_path, ref = paths[0], manifests[0]
    for path, m in zip(paths[1:], manifests[1:]):
        if _tokenizer_id(m) != _tokenizer_id(ref):
            a, b = ref["tokenizer"], m["tokenizer"]
            raise PreprocessError(
                f"{path} was made with tokenizer {b.get('path')} (sha256 {str(b.get('sha256'))[:12]}, vocab "
                f"{b.get('vocab_size')}) but {ref_path} with {a.get('path')} (sha256 {str(a.get('sha256'))[:12]}, "
                f"vocab {a.get('vocab_size')}): datasets of different tokenizers cannot be merged; "
                "preprocess all shards with the same --tokenizer-model")
        for field, what in _MUST_AGREE.items():
            if m.get(field) != ref.get(field):
                raise PreprocessError(f"{path} has {what} {m.get(field)!r} but {ref_path} has {ref.get(field)!r}; "
                                      "preprocess all shards with the same settings")


def _dataset(path: str, lang: str, key: str, entry: dict) -> str:
    """The dataset prefix of (lang, key) in one input, checked against its manifest."""
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    prefix = (entry.get("keys") or {}).get(key, {}).get("prefix") or entry.get("prefix")
    for ext in (".bin", ".idx"):
        if not os.path.isfile(f"{prefix}{ext}"):
            raise PreprocessError(f"{prefix}{ext} (listed in {path}) is missing; rerun that shard's preprocessing")
    n = len(IndexedDataset(prefix))
    if n != entry["documents"]:
        raise PreprocessError(f"{prefix} holds {n} documents but {path} says {entry['documents']}; the files do "
                              "not belong to that manifest: rerun that shard's preprocessing")
    return prefix


@dataclass
class MergeConfig:
    input: list
    output_prefix: str

    def build(self) -> "Merger":
        return Merger(self)


class Merger:
    def __init__(self, cfg: MergeConfig):
        self.cfg = cfg
        self.paths: list[str] = []
        for arg in cfg.input:
            for p in _manifest_file(str(arg)):
                if os.path.abspath(p) in map(os.path.abspath, self.paths):
                    raise PreprocessError(f"--input: {p} is given twice")
                self.paths.append(p)
        out_manifest = os.path.abspath(f"{cfg.output_prefix}.manifest.json")
        if out_manifest in map(os.path.abspath, self.paths):
            raise PreprocessError(f"--output-prefix {cfg.output_prefix} is one of the inputs; choose a new prefix")
        if len(self.paths) < 2:
            raise PreprocessError(f"--input: {len(self.paths)} manifest(s) found; merging needs at least two")
        self.manifests = [_load(p) for p in self.paths]
        _check_compatible(self.paths, self.manifests)

    def run(self, log=None) -> dict:
        log = log or sys.stderr
        Path(self.cfg.output_prefix).parent.mkdir(parents=True, exist_ok=True)
        with PrefixLock(self.cfg.output_prefix):
            remove_stale_temps(self.cfg.output_prefix, log)
            outputs = OutputSet(self.cfg.output_prefix)
            try:
                manifest = self._merge(outputs, log)
                manifest_path = outputs.commit(manifest, manifest["json_keys"], log)
            except BaseException:
                outputs.abort()
                raise
        manifest["manifest_path"] = manifest_path
        return manifest

    def _merge(self, outputs: OutputSet, log) -> dict:
        from megatron.core.datasets.indexed_dataset import IndexedDatasetBuilder

        ref = self.manifests[0]
        keys, dtype = ref["json_keys"], np.dtype(ref["dtype"]).type
        group_field = ref.get("group_key")  # the inputs agree (_MUST_AGREE): groups survive
        langs = sorted({lang for m in self.manifests for lang in m["languages"]})
        languages = {}
        for lang in langs:
            have = [(p, m["languages"][lang]) for p, m in zip(self.paths, self.manifests) if lang in m["languages"]]
            entry = {"prefix": None, "documents": sum(e["documents"] for _, e in have),
                     "tokens": sum(e["tokens"] for _, e in have),
                     "sources": list(dict.fromkeys(s for _, e in have for s in e.get("sources", []))), "keys": {}}
            for key in keys:
                final = dataset_prefix(self.cfg.output_prefix, lang, key)
                tmp_bin, tmp_idx = outputs.temp(final + ".bin"), outputs.temp(final + ".idx")
                sources = [(_dataset(path, lang, key, e), e) for path, e in have]
                try:
                    builder = IndexedDatasetBuilder(tmp_bin, dtype=dtype)
                    for prefix, _ in sources:
                        builder.add_index(prefix)
                    builder.finalize(tmp_idx)
                except OSError as e:
                    raise io_error(tmp_bin, e) from None
                tokens = sum(((e.get("keys") or {}).get(key) or {"tokens": e["tokens"]})["tokens"] for _, e in have)
                entry["keys"][key] = {"prefix": os.path.abspath(final), "tokens": tokens}
                if group_field:  # the documents' groups, concatenated as the documents are
                    parts = [read_groups(prefix, group_field, e["documents"])
                             for prefix, e in sources]
                    tmp = outputs.temp(groups_path(final, group_field))
                    try:
                        with open(tmp, "wb") as f:
                            np.save(f, np.concatenate(parts).astype(np.int64, copy=False))
                    except OSError as e:
                        raise io_error(tmp, e) from None
            entry["prefix"] = entry["keys"][keys[0]]["prefix"]
            languages[lang] = entry
            print(f"  {lang}: {entry['documents']} docs, {entry['tokens']} tokens from {len(have)} inputs "
                  f"-> {entry['prefix']}", file=log)
        rejected: dict[str, int] = {}
        examples: dict[str, list] = {}
        for m in self.manifests:
            for reason, n in (m.get("rejected") or {}).items():
                rejected[reason] = rejected.get(reason, 0) + n
            for reason, ex in (m.get("reject_examples") or {}).items():
                examples.setdefault(reason, []).extend(ex[: max(0, 5 - len(examples.get(reason, [])))])
        return {
            **{k: ref.get(k) for k in ("tokenizer", "dtype", "json_key", "json_keys", "append_eod",
                                       "max_doc_chars", "lang_id", "group_key", "group_pattern")},
            "languages": languages,
            "rejected": rejected,
            "reject_examples": examples,
            "blank_lines": sum(m.get("blank_lines", 0) for m in self.manifests),
            "inputs": list(dict.fromkeys(i for m in self.manifests for i in m.get("inputs", []))),
            "merged_from": [os.path.abspath(p) for p in self.paths],
        }
