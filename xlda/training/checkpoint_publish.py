"""Publishing a checkpoint atomically: an iteration is written to ``<save>/.iter_N.partial/``,
renamed when every rank is done (a re-save swaps the two directories with ``renameat2``
RENAME_EXCHANGE), and "latest" is pointed at it last, so a kill at any point leaves "latest"
naming a complete directory. Also: rank-0-only steps every rank agrees on, and telling a full
disk from other save failures.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import shutil
from pathlib import Path

import torch.distributed as dist
from torch.distributed.checkpoint.api import CheckpointException

from xlda.checkpoint_layout import iter_dir, list_iterations, read_latest, write_latest
from xlda.files import fsync_path
from xlda.training import checkpoint_integrity as integrity
from xlda.training.checkpoint_errors import CheckpointError


def rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def fresh_dir(save_dir: Path, target: Path) -> None:
    save_dir.mkdir(parents=True, exist_ok=True)
    if target.exists():  # leftover of a crashed save
        shutil.rmtree(target)
    target.mkdir()


def on_rank0(fn) -> None:
    """Run ``fn`` on rank 0 only; if it fails every rank raises (none is left waiting in the next
    collective). A collective: acts as a barrier."""
    err = None
    if rank() == 0:
        try:
            fn()
        except (Exception, CheckpointException) as exc:
            err = exc
    failed = any(integrity.all_gather(err is not None))
    if err is not None:
        raise err
    if failed:
        raise CheckpointError("rank 0 failed while saving the checkpoint (its log says why)")


def no_space(exc: BaseException, save_dir: Path) -> bool:
    """Whether a failed save ran out of disk: ENOSPC anywhere in the exception chain (torch's
    writers wrap it in RuntimeError text or a CheckpointException per rank), or a full disk."""
    seen, stack = set(), [exc]
    while stack:
        e = stack.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno == errno.ENOSPC:
            return True
        if "No space left" in _text(e) or "ENOSPC" in _text(e):
            return True
        stack += [e.__cause__, e.__context__]
        failures = getattr(e, "failures", None)  # CheckpointException: {rank: exc or (exc, tb)}
        if isinstance(failures, dict):
            stack += [v[0] if isinstance(v, tuple) else v for v in failures.values()]
    try:  # "file write failed" from torch's zip writer carries no errno
        return shutil.disk_usage(save_dir).free < (1 << 20)
    except OSError:
        return False


def _text(e: BaseException) -> str:
    try:
        return str(e)
    except Exception:  # noqa: BLE001 - a malformed exception's __str__ must not mask the error
        return type(e).__name__


def root_cause(exc: BaseException) -> str:
    """"Type: message" (first line) of the error behind ``exc``; a CheckpointException's str is
    a traceback per rank, so its first rank's exception is used instead."""
    failures = getattr(exc, "failures", None)
    if isinstance(failures, dict) and failures:
        first = next(iter(failures.values()))
        exc = first[0] if isinstance(first, tuple) else first
    text = _text(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0][:300]}" if text else type(exc).__name__


_RENAME_EXCHANGE = 2


_AT_FDCWD = -100


def exchange(a: Path, b: Path) -> bool:
    """Atomically swap two directories (Linux renameat2 RENAME_EXCHANGE). False where the
    platform or file system cannot."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        fn = libc.renameat2
    except (OSError, AttributeError):
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(a))


def publish(save_dir: Path, target: Path, final: Path, iteration: int) -> None:
    """Rename the complete ``target`` to ``final`` and point "latest" at it; a kill at any point
    leaves "latest" naming a complete directory."""
    if not final.exists():
        os.replace(target, final)
    elif exchange(target, final):  # re-save of an iteration: one atomic swap
        shutil.rmtree(target, ignore_errors=True)  # (now the old copy)
    else:
        # No atomic swap here: move "latest" off this iteration while its dir is replaced.
        if read_latest(save_dir) == iteration:
            others = [i for i in list_iterations(save_dir) if i != iteration
                      and (iter_dir(save_dir, i) / integrity.MANIFEST_FILE).exists()]
            if others:
                write_latest(save_dir, others[-1])
        old = save_dir / f".{final.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        os.replace(final, old)
        os.replace(target, final)
        shutil.rmtree(old, ignore_errors=True)
    fsync_path(save_dir)
    write_latest(save_dir, iteration)
