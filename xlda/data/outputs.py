"""The output set of tools/preprocess_data.py and tools/merge_datasets.py, made final all at once.

An output set is `<prefix>_<lang>_<key>_document.{bin,idx}` for each language and key plus
`<prefix>.manifest.json`. Everything is written under `*.tmp-PID` names and flushed to disk
first (the manifest included), so a full disk or a crash while writing leaves no final name.
Then the old manifest and every dataset of the prefix the new manifest will not list are removed,
the data files are renamed and the manifest last: a manifest exists only beside a complete set.
A lock on `<prefix>.lock` keeps two runs off one prefix; once held, any `*.tmp-*` of the prefix
is the debris of a killed run and is removed.
"""
from __future__ import annotations

import errno
import fcntl
import glob
import json
import os
import re

from xlda.data.prefix import format_prefix
from xlda.files import fsync_path


class PreprocessError(RuntimeError):
    """Fatal input/config problem; the message names the file (and line) and what to do."""


def dataset_prefix(output_prefix: str, lang: str, key: str = "text") -> str:
    try:
        return format_prefix(output_prefix, lang, key)
    except ValueError as e:
        raise PreprocessError(str(e)) from None


def manifest_path(output_prefix: str) -> str:
    return f"{output_prefix}.manifest.json"


def io_error(path: str, e: OSError, what: str = "--output-prefix") -> PreprocessError:
    """An OSError while writing `path`, as a message that names it and says what to do."""
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        return PreprocessError(f"{path}: no space left on device (or quota exceeded) on "
                               f"{os.path.dirname(os.path.abspath(path))}; free space or choose another {what}")
    return PreprocessError(f"{path}: {e.strerror or e} (errno {e.errno})")


class PrefixLock:
    """Exclusive flock on `<prefix>.lock` (released by the kernel when a run dies, even by kill -9)."""

    def __init__(self, output_prefix: str):
        self.path = f"{output_prefix}.lock"
        self.fd = None

    def __enter__(self):
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                raise PreprocessError(
                    f"{self.path} is locked: another run is writing this --output-prefix; wait for it "
                    "or choose another prefix") from None
            # The holder before us may have unlinked the file after we opened it: lock the live one.
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if same:
                self.fd = fd
                return self
            os.close(fd)

    def __exit__(self, *exc):
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
        os.close(self.fd)
        self.fd = None


def _own_files(output_prefix: str, keys) -> list[tuple[str, str, str]]:
    """(path, lang, key) of every dataset file of this prefix with one of `keys`. Languages cannot
    hold '_', so `x_en_ko_text_document` (prefix x_en) never counts as a file of prefix x."""
    out = []
    base = os.path.basename(output_prefix)
    for key in sorted(set(keys)):
        rx = re.compile(re.escape(base) + r"_([a-z]{2,3})_" + re.escape(key)
                        + r"_document\.(bin|idx|group-[\w.-]+\.npy)")
        for p in glob.glob(glob.escape(output_prefix) + "_*_" + glob.escape(key) + "_document.*"):
            m = rx.fullmatch(os.path.basename(p))
            if m:
                out.append((p, m[1], key))
    return sorted(out)


def stale_temps(output_prefix: str) -> list[str]:
    base = re.escape(os.path.basename(output_prefix))
    rx = re.compile(base + r"(_[a-z]{2,3}_.+_document\.(bin|idx|group-[\w.-]+\.npy)"
                    r"|\.manifest\.json)\.tmp-\d+")
    return sorted(p for p in glob.glob(glob.escape(output_prefix) + "*.tmp-*")
                  if rx.fullmatch(os.path.basename(p)))


def remove_stale_temps(output_prefix: str, log) -> None:
    """Call with the PrefixLock held: then no live run owns any temp of this prefix."""
    for p in stale_temps(output_prefix):
        os.remove(p)
        print(f"removed {p} (left by an interrupted run)", file=log)


def _old_keys(output_prefix: str) -> set:
    try:
        m = json.loads(open(manifest_path(output_prefix), encoding="utf-8").read())
    except (OSError, ValueError):
        return set()
    keys = m.get("json_keys") or [m.get("json_key")]
    return {k for k in keys if isinstance(k, str)}


class OutputSet:
    """Temp names for one output set; `commit` makes them final together, `abort` removes them."""

    def __init__(self, output_prefix: str):
        self.output_prefix = output_prefix
        self.tag = f".tmp-{os.getpid()}"
        self.pending: list[tuple[str, str]] = []  # (temp, final), in creation order

    def temp(self, final: str) -> str:
        tmp = final + self.tag
        self.pending.append((tmp, final))
        return tmp

    def commit(self, manifest: dict, keys, log) -> str:
        final_manifest = manifest_path(self.output_prefix)
        tmp_manifest = self.temp(final_manifest)
        try:
            with open(tmp_manifest, "w", encoding="utf-8") as f:
                json.dump(manifest, f, indent=2, ensure_ascii=False)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
        except OSError as e:
            raise io_error(tmp_manifest, e) from None
        for tmp, _ in self.pending:
            fsync_path(tmp)
        finals = {final for _, final in self.pending}
        # Nothing of the old set may outlive it (its manifest first, then its data, including
        # languages and keys this run does not write), so a failed rename leaves no mixed set.
        old_files = _own_files(self.output_prefix, set(keys) | _old_keys(self.output_prefix))
        if os.path.exists(final_manifest):
            os.remove(final_manifest)
        for p, _, _ in old_files:
            os.remove(p)
            if p not in finals:
                print(f"removed {p}: not part of this run's output set (a previous run's language or key)",
                      file=log)
        # .bin before .idx (an .idx is what makes a dataset look complete), the manifest last.
        order = sorted(self.pending, key=lambda tf: (tf[1] == final_manifest, tf[1].endswith(".idx")))
        done = []
        try:
            for tmp, final in order:
                os.replace(tmp, final)
                done.append(final)
        except BaseException:
            for final in done:  # a half-renamed set must not look like a dataset
                try:
                    os.remove(final)
                except OSError:
                    pass
            raise
        fsync_path(os.path.dirname(os.path.abspath(final_manifest)))  # the renames, durable
        self.pending = []
        return final_manifest

    def abort(self) -> None:
        for tmp, _ in self.pending:
            try:
                os.remove(tmp)
            except FileNotFoundError:
                pass
        self.pending = []
