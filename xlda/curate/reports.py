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


class TaskReport:
    def __init__(self, max_examples: int = 5):
        self.counts: dict[str, Counter] = defaultdict(Counter)
        self.examples: dict[str, list[str]] = defaultdict(list)
        self.extra: dict = {}
        self.max_examples = max_examples

    def add(self, lang: str, reason: str, example: str | None = None, n: int = 1) -> None:
        self.counts[lang][reason] += n
        if example is not None and len(self.examples[reason]) < self.max_examples:
            self.examples[reason].append(example)

    def write(self, directory: str | os.PathLike, tag: str) -> None:
        d = Path(directory)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f".{tag}.json.tmp"
        tmp.write_text(json.dumps({"counts": {k: dict(v) for k, v in self.counts.items()},
                                   "examples": dict(self.examples), "extra": self.extra},
                                  ensure_ascii=False, sort_keys=True))
        os.replace(tmp, d / f"{tag}.json")


def merge_reports(directory: str | os.PathLike, max_examples: int = 5) -> dict:
    """All task files of one step -> {"counts": {lang: {reason: n}}, "examples": {...}, "extra": {tag: ...}}."""
    counts: dict[str, Counter] = defaultdict(Counter)
    examples: dict[str, list] = defaultdict(list)
    extra = {}
    for f in sorted(Path(directory).glob("*.json")):
        r = json.loads(f.read_text())
        for lang, c in r["counts"].items():
            counts[lang].update(c)
        for reason, ex in r["examples"].items():
            room = max_examples - len(examples[reason])
            examples[reason].extend(ex[:max(room, 0)])
        if r.get("extra"):
            extra[f.stem] = r["extra"]
    return {"counts": {k: dict(sorted(v.items())) for k, v in sorted(counts.items())},
            "examples": dict(sorted(examples.items())), "extra": extra}
