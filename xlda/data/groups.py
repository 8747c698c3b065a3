"""Document groups: which documents translate or discuss each other, for affinity packing.

A group is a field of the JSONL documents (``--group-key FIELD``, e.g. a page path, a Wikipedia
interlanguage link, a URL), optionally cut by a regex whose first group is the key
(``--group-pattern``). tools/preprocess_data.py stores each document's group beside its
language's dataset as ``<dataset prefix>.group-<FIELD>.npy``: one int64 per document, a 64-bit
hash of the key (0: no group; documents of different languages preprocessed apart agree because
the hash depends only on the key's text). tools/merge_datasets.py concatenates them with the
datasets; the packer reads them with ``--xlda-affinity-key FIELD``.
"""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from typing import Optional

import numpy as np

FIELD_RE = re.compile(r"[\w.-]+")  # a group field becomes part of a file name


def groups_path(dataset_prefix: str, field: str) -> str:
    return f"{dataset_prefix}.group-{field}.npy"


def group_hash(key: str) -> int:
    """The group id of a key: a signed 64-bit BLAKE2b hash, never 0 (0 means no group)."""
    h = int.from_bytes(hashlib.blake2b(key.encode("utf-8"), digest_size=8).digest(), "little",
                       signed=True)
    return h or 1


def check_field(field: str, flag: str = "--group-key") -> str:
    if not FIELD_RE.fullmatch(field or ""):
        raise ValueError(f"{flag} {field!r}: give a field name of letters, digits, '_', '.', '-' "
                         "(it becomes part of the groups file's name)")
    return field


@dataclass
class GroupSpec:
    """How a document's group is read: a field, optionally cut by a regex (its first group)."""

    key: str
    pattern: Optional[str] = None

    def __post_init__(self):
        check_field(self.key)
        try:
            self._re = re.compile(self.pattern) if self.pattern else None
        except re.error as e:
            raise ValueError(f"--group-pattern {self.pattern!r}: not a regular expression "
                             f"({e})") from None

    def group_of(self, doc: dict, where: str) -> str:
        """The group key of ``doc`` (ValueError naming ``where`` when it has none)."""
        if self.key not in doc:
            raise ValueError(f"{where}: no field {self.key!r} (--group-key); fields: "
                             f"{sorted(doc)[:8]}")
        value = doc[self.key]
        if isinstance(value, bool) or not isinstance(value, (str, int)) or str(value) == "":
            # null or "" would silently merge unrelated documents into one group
            raise ValueError(f"{where}: {self.key} {value!r} is not a usable group key "
                             f"(--group-key needs a non-empty string or integer)")
        value = str(value)
        if self._re is None:
            return value
        m = self._re.search(value)
        if m is None:
            raise ValueError(f"{where}: {self.key} {value!r} does not match --group-pattern "
                             f"{self.pattern!r}")
        return m.group(1) if m.groups() else m.group(0)


def read_groups(dataset_prefix: str, field: str, num_docs: int) -> np.ndarray:
    """The groups of a dataset's documents (memory-mapped int64), checked against its size."""
    path = groups_path(dataset_prefix, field)
    if not os.path.isfile(path):
        raise FileNotFoundError(
            f"{path}: no groups for --xlda-affinity-key {field} beside {dataset_prefix}; make "
            f"them with tools/preprocess_data.py --group-key {field} (merge_datasets.py keeps "
            "them)")
    g = np.load(path, mmap_mode="r", allow_pickle=False)
    if g.dtype != np.int64 or g.ndim != 1 or g.shape[0] != num_docs:
        raise ValueError(f"{path}: {g.shape} {g.dtype} groups for a dataset of {num_docs} "
                         "documents (expected int64, one per document): rebuild it with "
                         "tools/preprocess_data.py")
    return g
