"""The name of a preprocessed dataset, written and read in one place (Megatron-LM's naming with
the language added): ``<output-prefix>_<lang>_<json-key>_document`` (``.bin``/``.idx``), one per
language and ``--json-keys`` key. Torch-free (the CLIs' pre-flight reads it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_LANG = re.compile(r"[a-z]{2,3}")  # a file name's language: a plain ISO 639 code, no '_' or '-'
SUFFIX = "_document"


@dataclass(frozen=True)
class DatasetPrefix:
    output_prefix: str  # what tools/preprocess_data.py was given as --output-prefix
    lang: str
    key: str  # the JSON key the documents came from ("text", "title", ...)

    def __str__(self) -> str:
        return format_prefix(self.output_prefix, self.lang, self.key)


def format_prefix(output_prefix: str, lang: str, key: str = "text") -> str:
    # The language is part of a path: a code that is not a plain tag would escape the directory.
    if not _LANG.fullmatch(lang):
        raise ValueError(f"language {lang!r} is not an ISO 639 code; refusing it in a file name")
    if not key or "/" in key:
        raise ValueError(f"--json-keys {key!r}: not usable in a file name")
    return f"{output_prefix}_{lang}_{key}{SUFFIX}"


def parse_prefix(prefix: str) -> DatasetPrefix:
    """``out/corpus_ko_title_document`` -> (``out/corpus``, ``ko``, ``title``). The last field
    is the key, the one before it the language; a key holding '_' is ambiguous in a name (give
    such data by language in a recipe's ``data.paths``)."""
    path = Path(prefix)
    name = path.name
    if not name.endswith(SUFFIX):
        raise ValueError(_bad(prefix))
    stem = name[: -len(SUFFIX)]
    parts = stem.split("_")
    if len(parts) < 3 or not parts[0] or not _LANG.fullmatch(parts[-2]) or not parts[-1]:
        raise ValueError(_bad(prefix))
    return DatasetPrefix(str(path.with_name("_".join(parts[:-2]))), parts[-2], parts[-1])


def _bad(prefix: str) -> str:
    return (f"data prefix {prefix!r}: cannot read its language; expected "
            "'<output-prefix>_<lang>_<json-key>_document' (tools/preprocess_data.py output) or "
            "use `data.paths: {lang: [prefix]}` in the recipe")
