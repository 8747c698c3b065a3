"""Reading post-training JSONL: one record per line, bad ones counted per reason with file:line
(as preprocessing counts its skipped documents); ``strict`` turns the first one into an error."""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path
from typing import Callable, Iterator

from xlda.data.jsonl import json_lines
from xlda.posttrain.chat import RecordError

EXAMPLES_KEPT = 5  # file:line examples reported per reason


class BadRecords:
    def __init__(self, strict: bool = False):
        self.strict = strict
        self.counts: dict = defaultdict(int)
        self.where: dict = defaultdict(list)

    def add(self, reason: str, where: str, detail: str) -> None:
        if self.strict:
            raise ValueError(f"{where}: {reason}: {detail} (--strict stops at the first bad "
                             "record; drop --strict to skip and count them)")
        self.counts[reason] += 1
        if len(self.where[reason]) < EXAMPLES_KEPT:
            self.where[reason].append(f"{where} ({detail})")

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def summary(self) -> str:
        if not self.total:
            return "no bad records"
        return "; ".join(f"{r}: {n} (e.g. {', '.join(self.where[r])})"
                         for r, n in sorted(self.counts.items()))

    def as_dict(self) -> dict:
        return {"counts": dict(self.counts), "examples": {k: list(v) for k, v in self.where.items()}}


def read_records(paths, convert: Callable, bad: BadRecords) -> Iterator:
    """``convert(record) -> item`` for every JSON line of ``paths``; a RecordError or a line that is
    not a JSON object is counted under its reason."""
    for p in paths:
        path = Path(p)
        if not path.is_file():
            raise FileNotFoundError(f"post-training data {path}: file not found")
        for where, rec, err in json_lines(path):
            if err is not None:
                bad.add("bad_json", where, err)
                continue
            if not isinstance(rec, dict):
                bad.add("bad_json", where, "not a JSON object")
                continue
            try:
                yield convert(rec)
            except RecordError as e:
                bad.add(e.reason, where, str(e).split(": ", 1)[-1])
