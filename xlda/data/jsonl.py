"""JSON-lines input shared by the stages that read documents or records (preprocessing,
ablation, post-training): plain, gzip or (multi-frame) zstd files, streamed line by line; blank
lines skipped and every line named ``path:line`` for error messages."""
from __future__ import annotations

import gzip
import json
from typing import Iterator


def open_lines(path: str):
    """Binary line stream of a .jsonl, .jsonl.gz or .jsonl.zst file (streamed, never all read)."""
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    if path.endswith((".zst", ".zstd")):
        return _ZstdLines(path)
    return open(path, "rb")


class _ZstdLines:
    """Lines of a (multi-frame) .zst file; a truncated last frame is an error, not silent EOF
    (zstandard's stream_reader just stops there)."""

    def __init__(self, path: str):
        self.fh = open(path, "rb")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.fh.close()

    def __iter__(self):
        import zstandard

        dctx = zstandard.ZstdDecompressor()
        dobj, in_frame, tail = dctx.decompressobj(), False, b""
        while data := self.fh.read(1 << 20):
            out = []
            while data:
                in_frame = True
                out.append(dobj.decompress(data))
                if not dobj.eof:
                    break
                data, dobj, in_frame = dobj.unused_data, dctx.decompressobj(), False
            lines = (tail + b"".join(out)).split(b"\n")
            tail = lines.pop()
            yield from (line + b"\n" for line in lines)
        if in_frame:
            raise EOFError("zstd stream ends inside a frame")
        if tail:
            yield tail


def json_lines(path) -> Iterator[tuple[str, object, str | None]]:
    """``(where, value, error)`` per non-blank line: ``where`` is ``path:line``; ``error`` is the
    JSON decoder's message (and ``value`` None) when the line is not JSON. Callers decide whether
    a bad line stops the run or is counted."""
    with open_lines(str(path)) as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            where = f"{path}:{lineno}"
            try:
                yield where, json.loads(line), None
            except json.JSONDecodeError as e:
                yield where, None, str(e)
