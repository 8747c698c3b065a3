"""Build-once cache of the packing index: `.npy` files named by a parameter hash.

Safe when many processes start at once, with or without torch.distributed: the builder holds an
exclusive `fcntl.flock` on `<base>.lock`, writes every array to a temp name and renames it into
place (atomic on POSIX), and renames the description file last: it is the "complete" marker, so
a reader that sees it sees every array whole. Readers that find the marker skip the lock.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import os
import time
from typing import Callable, Optional

import numpy as np

from xlda.data.packing import ARRAY_NAMES, PackedIndex

logger = logging.getLogger(__name__)

BUILD_COUNTER = {"builds": 0}  # per process; lets tests see whether a build happened


def params_hash(params: dict) -> str:
    text = json.dumps(params, sort_keys=True, default=str)
    return hashlib.md5(text.encode("utf-8"), usedforsecurity=False).hexdigest()


def _paths(cache_dir: str, base: str) -> dict:
    paths = {n: os.path.join(cache_dir, f"{base}-{n}.npy") for n in ARRAY_NAMES}
    paths["description"] = os.path.join(cache_dir, f"{base}-description.json")
    paths["lock"] = os.path.join(cache_dir, f"{base}.lock")
    return paths


def _load(paths: dict) -> PackedIndex:
    return PackedIndex(**{n: np.load(paths[n], mmap_mode="r") for n in ARRAY_NAMES})


def _atomic_save_npy(path: str, array: np.ndarray) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def load_or_build(
    cache_dir: Optional[str], base: str, description: dict, build: Callable[[], PackedIndex]
) -> PackedIndex:
    """Return the cached index under cache_dir/base-*, building it (once, under a lock) if
    missing. cache_dir=None builds in memory without caching."""
    if cache_dir is None:
        BUILD_COUNTER["builds"] += 1
        return build()
    paths = _paths(cache_dir, base)
    if os.path.isfile(paths["description"]):
        return _load(paths)
    os.makedirs(cache_dir, exist_ok=True)
    with open(paths["lock"], "a+") as lock:
        fcntl.flock(lock.fileno(), fcntl.LOCK_EX)
        try:
            if os.path.isfile(paths["description"]):  # another process built it meanwhile
                return _load(paths)
            t0 = time.time()
            logger.info("building XLDA packing index %s in %s", base, cache_dir)
            index = build()
            BUILD_COUNTER["builds"] += 1
            for name, array in index.arrays().items():
                _atomic_save_npy(paths[name], np.ascontiguousarray(array))
            tmp = f"{paths['description']}.tmp-{os.getpid()}"
            with open(tmp, "w") as f:
                json.dump(description, f, indent=2, sort_keys=True, default=str)
            os.replace(tmp, paths["description"])
            logger.info("built XLDA index: %d samples in %.2fs", len(index), time.time() - t0)
        finally:
            fcntl.flock(lock.fileno(), fcntl.LOCK_UN)
    return _load(paths)
