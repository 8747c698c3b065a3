"""Read `{"id","lang","text"}` JSONL(.gz) inputs and split off held-out documents."""
from __future__ import annotations

import gzip
import hashlib
import json
import math
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Doc:
    id: str
    lang: str
    text: str


def read_docs(path: str | Path, max_docs: int | None = None) -> list[Doc]:
    """All documents of a JSONL or JSONL.gz file; bad lines raise naming file and line."""
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(f"input file not found: {p} (check the path given to --base-input/--extend-input)")
    opener = gzip.open if p.suffix == ".gz" else open
    docs: list[Doc] = []
    with opener(p, "rt", encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise ValueError(f"{p}:{lineno}: not valid JSON ({e.msg}); each line must be a JSON object") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("text"), str):
                raise ValueError(f"{p}:{lineno}: expected an object with a string 'text' field")
            docs.append(Doc(str(obj.get("id", f"{p.name}:{lineno}")), str(obj.get("lang", "")), obj["text"]))
            if max_docs is not None and len(docs) >= max_docs:
                break
    if not docs:
        raise ValueError(f"{p}: no documents (empty file?)")
    return docs


def split_heldout(docs: list[Doc], fraction: float, seed: int) -> tuple[list[Doc], list[Doc]]:
    """(train, heldout). Held-out = the ceil(fraction*n) docs with the smallest seeded hash of
    (position, id): independent of machine, stable under reordering of other files."""
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"--heldout-fraction must be in [0, 1), got {fraction}")
    n = len(docs)
    k = math.ceil(fraction * n) if fraction > 0 else 0
    if k >= n:
        k = n - 1  # keep at least one training document
    keys = sorted(range(n), key=lambda i: hashlib.sha256(f"{seed}:{i}:{docs[i].id}".encode()).digest())
    held = set(keys[:k])
    return [d for i, d in enumerate(docs) if i not in held], [d for i, d in enumerate(docs) if i in held]
