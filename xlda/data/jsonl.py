"""JSON-lines input shared by the stages that read documents or records (ablation, post-training):
plain or gzip files, blank lines skipped, every line named ``path:line`` for error messages."""
from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Iterator


def open_text(path):
    """``path`` as UTF-8 text, gunzipped when it ends in ``.gz``."""
    path = Path(path)
    return gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else \
        open(path, encoding="utf-8")


def json_lines(path) -> Iterator[tuple[str, object, str | None]]:
    """``(where, value, error)`` per non-blank line: ``where`` is ``path:line``; ``error`` is the
    JSON decoder's message (and ``value`` None) when the line is not JSON. Callers decide whether
    a bad line stops the run or is counted."""
    with open_text(path) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                yield where, json.loads(line), None
            except json.JSONDecodeError as e:
                yield where, None, str(e)
