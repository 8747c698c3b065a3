"""Build-once cache of the packing index: one directory of raw arrays per parameter hash.

`<cache>/<base>/` holds `<array>.bin` files (raw, memory-mapped on open) and `description.json`
(the parameters, the format version, the build stats, and per array its dtype, length, byte
size and CRC32). The builder holds an exclusive `fcntl.flock` on `<base>.lock`, writes
everything into `<base>.tmp-PID/` and renames the directory into place: a reader that sees
`<base>/description.json` sees every array whole. Readers that find it skip the lock.

Opening verifies each array's size, and its CRC32 (streamed from the file, not through the
mapping, so it adds nothing to RSS) when the array is at most VERIFY_FULL_BYTES; larger arrays
get sampled blocks (head, tail and 64 spread blocks), and `tools/build_packing_index.py
--verify` checks them whole. A mismatch (truncated, garbled or edited cache) is logged naming
the file and the cache is rebuilt under the lock.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import shutil
import time
import zlib
from typing import Callable, Optional

import numpy as np

from xlda.data.packing import ARRAY_NAMES, FORMAT_VERSION, PackedIndex, open_raw

logger = logging.getLogger(__name__)

BUILD_COUNTER = {"builds": 0}  # per process; lets tests see whether a build happened
VERIFY_FULL_BYTES = 256 << 20
SAMPLE_BLOCK = 1 << 16


def params_hash(params: dict) -> str:
    text = json.dumps(dict(params, format=FORMAT_VERSION), sort_keys=True, default=str)
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _crc(path: str, size: int, full: bool) -> int:
    """CRC32 of the whole file, or of its sampled blocks (deterministic positions)."""
    crc = 0
    buf = bytearray(1 << 20)  # one small reused buffer: reading adds nothing lasting to RSS
    view = memoryview(buf)
    with open(path, "rb") as f:
        if full or size <= 66 * SAMPLE_BLOCK:
            while True:
                n = f.readinto(buf)
                if not n:
                    break
                crc = zlib.crc32(view[:n], crc)
            return crc
        for k in range(66):
            f.seek((size - SAMPLE_BLOCK) * k // 65)
            n = f.readinto(view[:SAMPLE_BLOCK])
            crc = zlib.crc32(view[:n], crc)
    return crc


def _describe(directory: str, index: PackedIndex) -> dict:
    arrays = {}
    for name, a in index.arrays().items():
        path = os.path.join(directory, name + ".bin")
        size = os.path.getsize(path)
        full = size <= VERIFY_FULL_BYTES
        arrays[name] = {"dtype": np.dtype(a.dtype).str, "length": int(a.shape[0]),
                        "bytes": size, "crc32": _crc(path, size, True),
                        "crc32_sampled": None if full else _crc(path, size, False)}
    return arrays


def verify(directory: str, full: bool = False) -> Optional[str]:
    """None if the cached index in `directory` is whole, else what is wrong (naming the file)."""
    desc_path = os.path.join(directory, "description.json")
    try:
        with open(desc_path) as f:
            desc = json.load(f)
        arrays = desc["arrays"]
    except (OSError, ValueError, KeyError, TypeError) as e:
        return f"{desc_path}: unreadable description ({e})"
    if desc.get("format") != FORMAT_VERSION:
        return f"{desc_path}: index format {desc.get('format')}, this code reads {FORMAT_VERSION}"
    for name in ARRAY_NAMES:
        meta = arrays.get(name)
        path = os.path.join(directory, name + ".bin")
        if meta is None:
            return f"{desc_path}: no entry for {name}"
        try:
            size = os.path.getsize(path)
        except OSError:
            return f"{path}: missing"
        if size != meta["bytes"] or size != meta["length"] * np.dtype(meta["dtype"]).itemsize:
            return f"{path}: {size} bytes, expected {meta['bytes']} (truncated or replaced)"
        whole = full or meta.get("crc32_sampled") is None
        want = meta["crc32"] if whole else meta["crc32_sampled"]
        if _crc(path, size, whole) != want:
            return f"{path}: checksum mismatch (corrupted or edited)"
    return None


def _load(directory: str) -> PackedIndex:
    with open(os.path.join(directory, "description.json")) as f:
        desc = json.load(f)
    arrays = {n: open_raw(os.path.join(directory, n + ".bin"), np.dtype(m["dtype"]), m["length"])
              for n, m in desc["arrays"].items()}
    return PackedIndex(**arrays, stats=desc.get("stats", {}), description=desc)


def cache_path(cache_dir: str, base: str) -> str:
    return os.path.join(cache_dir, base)


def load_or_build(
    cache_dir: Optional[str], base: str, description: dict,
    build: Callable[[Optional[str]], PackedIndex],
) -> PackedIndex:
    """Return the cached index cache_dir/base/, building it (once, under a lock) if missing or
    damaged. build(out_dir) writes its arrays into out_dir (None: in memory).
    cache_dir=None builds in memory without caching."""
    if cache_dir is None:
        BUILD_COUNTER["builds"] += 1
        return build(None)
    final = cache_path(cache_dir, base)
    if is_cached(cache_dir, base) and verify(final) is None:
        return _load(final)
    os.makedirs(cache_dir, exist_ok=True)
    with open(os.path.join(cache_dir, f"{base}.lock"), "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            if os.path.isdir(final):
                problem = verify(final)
                if problem is None:  # another process built it meanwhile
                    return _load(final)
                logger.warning("XLDA index cache %s is damaged (%s): rebuilding it", final,
                               problem)
                shutil.rmtree(final)
            for stale in os.listdir(cache_dir):  # a builder killed earlier left these
                if stale.startswith(base + ".tmp-"):
                    shutil.rmtree(os.path.join(cache_dir, stale), ignore_errors=True)
            tmp = os.path.join(cache_dir, f"{base}.tmp-{os.getpid()}")
            os.makedirs(tmp)
            try:
                t0 = time.time()
                logger.info("building XLDA packing index %s in %s", base, cache_dir)
                index = build(tmp)
                BUILD_COUNTER["builds"] += 1
                for name, array in index.arrays().items():  # arrays built in RAM
                    p = os.path.join(tmp, name + ".bin")
                    if not os.path.isfile(p):
                        with open(p, "wb") as f:
                            f.write(np.ascontiguousarray(array).tobytes())
                desc = dict(description, format=FORMAT_VERSION, stats=index.stats,
                            arrays=_describe(tmp, index),
                            build_seconds=round(time.time() - t0, 3))
                with open(os.path.join(tmp, "description.json"), "w") as f:
                    json.dump(desc, f, indent=2, sort_keys=True, default=str)
                del index
                os.replace(tmp, final)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            logger.info("built XLDA index %s in %.2fs", base, time.time() - t0)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return _load(final)


def is_cached(cache_dir: Optional[str], base: str) -> bool:
    """Whether a finished index is there (its description is written last); not verified."""
    return cache_dir is not None and os.path.isfile(
        os.path.join(cache_path(cache_dir, base), "description.json"))


def find_cached(cache_dir: Optional[str], base: str) -> Optional[PackedIndex]:
    """The cached index if present and whole, else None (no lock, no build)."""
    if cache_dir is None:
        return None
    final = cache_path(cache_dir, base)
    if is_cached(cache_dir, base) and verify(final) is None:
        return _load(final)
    return None
