"""Conversion outputs appear whole or not at all: written into a staging directory beside the
final one and renamed when complete. A full disk removes the staging directory and says so; a
killed conversion's staging directory is removed by the next run."""
from __future__ import annotations

import errno
import glob
import logging
import os
import re
import shutil
from pathlib import Path

from xlda.checkpoint_conversion.arch import ConversionError
from xlda.files import fsync_path

log = logging.getLogger(__name__)

# How a full disk shows through libraries that do not raise OSError(ENOSPC): safetensors (Rust
# io::Error), torch's zip writer (c10::Error "enforce fail at inline_container.cc"), dist checkpoint.
_DISK_FULL = re.compile(r"No space left|StorageFull|ENOSPC|os error 28|code: 28|Disk quota|inline_container")


def is_disk_full(e: BaseException, where: Path | None = None) -> bool:
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if _DISK_FULL.search(str(e)):
            return True
        e = e.__cause__ or e.__context__
    if where is not None:
        try:
            return shutil.disk_usage(where).free < (1 << 20)
        except OSError:
            return False
    return False


def _pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover: an earlier conversion in this process failed to clean up
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class Staging:
    """``with Staging(final) as s: write into s.path`` -> renamed to ``final`` on success.

    ``final`` may not exist yet or be an empty directory. ``stage_name`` defaults to
    ``.<name>.tmp-<pid>``; the trainer's ``.<iter>.partial`` convention is used for iteration dirs.
    """

    def __init__(self, final, kind: str = "dir", stage_name: str | None = None, flag: str = "--save-dir"):
        self.final, self.flag = Path(final), flag
        self.stage_name = stage_name or f".{self.final.name}.tmp-{os.getpid()}"
        self.path = self.final.parent / self.stage_name

    def _remove_leftovers(self) -> None:
        parent, name = self.final.parent, self.final.name
        for p in parent.glob(f".{glob.escape(name)}.tmp-*"):
            m = re.fullmatch(re.escape(f".{name}.tmp-") + r"(\d+)", p.name)
            if m and not _pid_alive(int(m[1])):
                shutil.rmtree(p, ignore_errors=True)
                log.warning("removed %s (left by an interrupted conversion)", p)
        if self.path.exists():
            shutil.rmtree(self.path)
            log.warning("removed %s (left by an interrupted conversion)", self.path)

    def __enter__(self) -> "Staging":
        if self.final.exists() and (not self.final.is_dir() or any(self.final.iterdir())):
            raise ConversionError(f"{self.final} already exists and is not empty; choose a new or empty {self.flag}")
        try:
            self.final.parent.mkdir(parents=True, exist_ok=True)
            self._remove_leftovers()
            os.mkdir(self.path)  # not tempfile.mkdtemp: that would make the output 0700
        except OSError as e:
            raise self._error(e) from None
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc is None:
            try:
                for p in self.path.rglob("*"):
                    if p.is_file():
                        fsync_path(p)
                if self.final.exists():
                    os.rmdir(self.final)  # empty (checked on entry)
                os.replace(self.path, self.final)
                fsync_path(self.final.parent)
                return False
            except OSError as e:
                shutil.rmtree(self.path, ignore_errors=True)
                raise self._error(e) from None
        shutil.rmtree(self.path, ignore_errors=True)
        if isinstance(exc, ConversionError):
            return False
        writer_failed = isinstance(exc, Exception) or type(exc).__name__ == "CheckpointException"
        if isinstance(exc, OSError) or (writer_failed and is_disk_full(exc, self.final.parent)):
            raise self._error(exc) from None
        return False  # anything else (a bug, Ctrl-C) propagates as it is

    def _error(self, e: BaseException) -> ConversionError:
        where = self.final.parent
        if is_disk_full(e, where):
            return ConversionError(f"no space left on device writing {self.final} (on {where.resolve()}); "
                                   f"nothing was written: free space or choose another {self.flag}")
        return ConversionError(f"writing {self.final} failed ({type(e).__name__}: {e}); nothing was written")
