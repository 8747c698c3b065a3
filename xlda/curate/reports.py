"""Per-task counts and examples, written once a task's stream is exhausted and merged at the end.

Each step that drops or rejects documents keeps `{lang: {reason: count}}` and a few `file:line`
examples per reason, and writes them to <work>/reports/<step>/<tag>.json when its input ends. A
rerun of a task rewrites its own file, so merged totals never double-count a retried task.
"""
from __future__ import annotations

import json
import os
from collections import Counter, defaultdict
from pathlib import Path

from xlda.files import atomic_write


class TaskReport:
    def __init__(self, max_examples: int = 5):
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.examples: dict[str, list[str]] = defaultdict(list)
        # the same, per language: the manifest shows which documents each drop reason took
        self.lang_examples: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
        self.extra: dict = {}
        self.max_examples = max_examples

    def add(self, lang: str, reason: str, example: str | None = None, n: int = 1) -> None:
        self.counts[lang][reason] += n
        if example is None:
            return
        if len(self.examples[reason]) < self.max_examples:
            self.examples[reason].append(example)
        if len(self.lang_examples[lang][reason]) < self.max_examples:
            self.lang_examples[lang][reason].append(example)

    def write(self, directory: str | os.PathLike, tag: str) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        atomic_write(d / f"{tag}.json", json.dumps(
            {"counts": {k: dict(v) for k, v in self.counts.items()},
             "examples": dict(self.examples), "extra": self.extra,
             "lang_examples": {k: dict(v) for k, v in self.lang_examples.items()}},
            ensure_ascii=False, sort_keys=True))


def merge_reports(directory: str | os.PathLike, max_examples: int = 5) -> dict:
    """All task files of one step -> {"counts": {lang: {reason: n}}, "examples": {...}, "extra": {tag: ...}}."""
    counts: dict[str, Counter] = defaultdict(Counter)
    examples: dict[str, list] = defaultdict(list)
    lang_examples: dict[str, dict[str, list]] = defaultdict(lambda: defaultdict(list))
    extra = {}
    for f in sorted(Path(directory).glob("*.json")):
        r = json.loads(f.read_text())
        for lang, c in r["counts"].items():
            counts[lang].update(c)
        for reason, ex in r["examples"].items():
            room = max_examples - len(examples[reason])
            examples[reason].extend(ex[:max(room, 0)])
        for lang, per in r.get("lang_examples", {}).items():
            for reason, ex in per.items():
                mine = lang_examples[lang][reason]
                mine.extend(ex[:max(max_examples - len(mine), 0)])
        if r.get("extra"):
            extra[f.stem] = r["extra"]
    return {"counts": {k: dict(sorted(v.items())) for k, v in sorted(counts.items())},
            "examples": dict(sorted(examples.items())), "extra": extra,
            "lang_examples": {k: dict(sorted(v.items())) for k, v in sorted(lang_examples.items())}}
