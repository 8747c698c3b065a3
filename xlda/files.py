"""Files that are never seen half-written: write to a temp name beside the target, fsync, rename
(atomic on POSIX), fsync the directory so the rename survives a crash. One sha256 of a file.

Torch-free and dependency-free: every layer may use it.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Union

_CHUNK = 8 << 20


def fsync_path(path) -> None:
    """fsync a file or a directory (a directory: its entries, e.g. a rename into it)."""
    fd = os.open(str(path), os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def temp_path(path: Path) -> Path:
    """A hidden temp name beside ``path``, unique per process (ranks may race on a shared disk),
    ending in ``.tmp`` (what checksums and cleanups skip)."""
    path = Path(path)
    return path.with_name(f".{path.name}.{os.getpid()}.tmp")


def atomic_write(path, data: Union[str, bytes], durable: bool = True) -> Path:
    """Write ``data`` to ``path`` so a reader sees the old file or the whole new one, never a
    part; ``durable``: fsync the file and the directory (a checkpoint's tracker, a manifest)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    try:
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    if durable:
        fsync_path(path.parent)
    return path


def sha256_file(path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()
