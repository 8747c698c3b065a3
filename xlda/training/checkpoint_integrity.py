"""Per-file checksums of a checkpoint directory, and naming the file that broke a load.

``checksums.json`` (written last, inside the ``.partial`` directory, before it is renamed
complete) records the size and sha256 of every file of the iteration directory. Loading verifies
them *before anything in the directory is unpickled*: torch's distributed checkpoint reads
``.metadata`` with ``pickle`` and megatron-core <= 0.18 reads ``common.pt`` with ``torch.load``,
so a modified file must be refused before it is read (this detects corruption and tampering with
single files; whoever can rewrite the whole directory can rewrite checksums.json too: load only
checkpoints you trust). Hashing is shared out over the ranks: each hashes every world-th file.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch.distributed as dist

from xlda.files import atomic_write, sha256_file

MANIFEST_FILE = "checksums.json"


def _world() -> tuple[int, int]:
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def checkpoint_files(path: Path) -> list[str]:
    """Relative names of the files a checksum covers (everything but the manifest and temps)."""
    out = []
    for p in sorted(path.rglob("*")):
        rel = p.relative_to(path).as_posix()
        if p.is_file() and rel != MANIFEST_FILE and not rel.endswith(".tmp"):
            out.append(rel)
    return out


def all_gather(obj) -> list:
    """Every rank's ``obj``, by rank (a collective; no communication in a world of one)."""
    rank, world = _world()
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def hash_files(path: Path) -> dict:
    """{name: {"size", "sha256"}} of every file of ``path`` (a collective: all files must be on
    disk; each rank hashes its share, every rank gets the whole dict)."""
    rank, world = _world()
    names = checkpoint_files(path) if rank == 0 else None
    if world > 1:
        box = [names]
        dist.broadcast_object_list(box, src=0)
        names = box[0]
    mine = {n: {"size": (path / n).stat().st_size, "sha256": sha256_file(path / n)}
            for n in names[rank::world]}
    files: dict = {}
    for part in all_gather(mine):
        files.update(part)
    return dict(sorted(files.items()))


def store_manifest(path: Path, files: dict) -> None:
    """Write ``checksums.json`` (temp file, fsync, rename): one rank only."""
    atomic_write(path / MANIFEST_FILE, json.dumps({"algorithm": "sha256", "files": files}, indent=1))


def write_manifest(path: Path) -> None:
    """:func:`hash_files` then :func:`store_manifest` on rank 0 (a collective)."""
    files = hash_files(path)
    if _world()[0] == 0:
        store_manifest(path, files)


def read_manifest(path: Path) -> dict | None:
    """{name: {"size", "sha256"}}, or None for a checkpoint saved without checksums."""
    mf = path / MANIFEST_FILE
    if not mf.exists():
        return None
    try:
        files = json.loads(mf.read_text())["files"]
        if not all(isinstance(v["size"], int) and isinstance(v["sha256"], str)
                   for v in files.values()):
            raise ValueError("bad entry")
        return files
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise CorruptFilesError([(str(mf), f"unreadable ({exc})")]) from None


class CorruptFilesError(Exception):
    """``problems``: [(file, what is wrong)]."""

    def __init__(self, problems: list[tuple[str, str]]):
        self.problems = problems
        super().__init__("; ".join(f"{f}: {why}" for f, why in problems))


def verify_manifest(path: Path, files: dict) -> None:
    """Raise :class:`CorruptFilesError` (on every rank) if a recorded file is missing or its size
    or sha256 differs. A collective: each rank hashes every world-th file, sizes first."""
    rank, world = _world()
    problems = []
    for name in sorted(files)[rank::world]:
        rec, p = files[name], path / name
        if not p.is_file():
            problems.append((str(p), "missing"))
            continue
        size = p.stat().st_size
        if size != rec["size"]:
            problems.append((str(p), f"{size} bytes, recorded {rec['size']} (truncated or "
                                     f"overwritten)"))
        elif sha256_file(p) != rec["sha256"]:
            problems.append((str(p), "sha256 differs from the one recorded at save time "
                                     "(corrupted or modified)"))
    problems = [x for part in all_gather(problems) for x in part]
    if problems:
        raise CorruptFilesError(problems)


def find_damaged(path: Path, files: dict | None) -> list[tuple[str, str]]:
    """After a failed load: which files look truncated or unreadable. Sizes against the manifest
    when there is one; else ``.metadata`` must unpickle and every shard must be as long as the
    byte ranges it records (only called once torch has already read ``.metadata`` itself)."""
    if files is not None:
        out = []
        for name, rec in sorted(files.items()):
            p = path / name
            if not p.is_file():
                out.append((str(p), "missing"))
            elif p.stat().st_size != rec["size"]:
                out.append((str(p), f"{p.stat().st_size} bytes, recorded {rec['size']} (truncated)"))
        return out
    from torch.distributed.checkpoint import FileSystemReader

    try:
        meta = FileSystemReader(str(path)).read_metadata()
    except Exception as exc:  # noqa: BLE001 - any failure means the same: unreadable
        return [(str(path / ".metadata"), f"unreadable ({type(exc).__name__}: {exc}); "
                                          "truncated or corrupted")]
    need: dict[str, int] = {}
    for info in (meta.storage_data or {}).values():
        rel = getattr(info, "relative_path", None)
        if rel is not None:
            need[rel] = max(need.get(rel, 0), info.offset + info.length)
    out = []
    for rel, n in sorted(need.items()):
        p = path / rel
        if not p.is_file():
            out.append((str(p), "missing"))
        elif p.stat().st_size < n:
            out.append((str(p), f"{p.stat().st_size} bytes, but .metadata records data up to "
                                f"byte {n} (truncated)"))
    return out
