"""Start-up checks of a resolved RunConfig against the files and the machine, before any model
or dataset is built: every mistake a user can make on the command line is reported here as one
ConfigError naming the flag, instead of a traceback from deep inside the data or model code."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Callable, Optional

import numpy as np

from xlda.training.config import ConfigError, RunConfig

# Scan the data for the largest token id only up to this many bytes when no manifest records the
# tokenizer (a full read of a multi-TB corpus would stall start-up).
MAX_SCAN_BYTES = 4 << 30


def check(cfg: RunConfig, cuda: bool, log: Callable[[str], None] = print,
          beta_source: str = "--xlda-beta") -> None:
    """Raise ConfigError for the first problem found; ``log`` gets one line per note.
    ``beta_source`` names where xlda_beta came from (the flag, or the recipe)."""
    check_device(cfg, cuda)
    if cfg.data.mock:
        return
    main = cfg.data.language_paths()
    check_files(main, "--data-path")
    if cfg.data.annealing_data_path or cfg.data.annealing_paths:
        check_files(cfg.data.language_paths(annealing=True), "--annealing-data-path")
        check_groups(cfg.data, cfg.data.language_paths(annealing=True))
    check_beta(cfg.data.xlda_beta, main, beta_source)
    check_groups(cfg.data, main)
    check_tokenizer(cfg, main, log)


def check_groups(data, paths: dict) -> None:
    """With --xlda-affinity-p > 0: every prefix has its groups file (xlda.data.groups)."""
    if not data.xlda_affinity_p:
        return
    from xlda.data.groups import groups_path

    for lang, prefixes in paths.items():
        for prefix in prefixes:
            f = groups_path(prefix, data.xlda_affinity_key)
            if not os.path.isfile(f):
                raise ConfigError(
                    f"--xlda-affinity-key {data.xlda_affinity_key}: {f} not found (the groups of "
                    f"`{_short_name(prefix)}`); preprocess it with tools/preprocess_data.py "
                    f"--group-key {data.xlda_affinity_key}, or drop --xlda-affinity-p")


def check_device(cfg: RunConfig, cuda: bool) -> None:
    cfg.check_device(cuda)  # the trainer's own check, here before any import or set-up


def _output_prefix(prefix: str) -> str:
    """``out/data/lo_ko_text_document`` -> ``out/data/lo`` (tools/preprocess_data.py naming)."""
    from xlda.data.prefix import parse_prefix

    try:
        return parse_prefix(prefix).output_prefix
    except ValueError:
        return prefix  # not the tool's naming: no manifest to find


def _short_name(prefix: str) -> str:
    """``out/lo_ko_text_document`` -> ``lo_ko`` (the output prefix's name and the language)."""
    from xlda.data.prefix import parse_prefix

    try:
        p = parse_prefix(prefix)
    except ValueError:
        return Path(prefix).name
    return f"{Path(p.output_prefix).name}_{p.lang}"


def _manifest(prefix: str) -> Optional[Path]:
    path = Path(_output_prefix(prefix) + ".manifest.json")
    return path if path.is_file() else None


def check_files(paths: dict, flag: str) -> None:
    for lang, prefixes in paths.items():
        for prefix in prefixes:
            missing = [prefix + ext for ext in (".bin", ".idx") if not os.path.isfile(prefix + ext)]
            if not missing:
                continue
            short = _short_name(prefix)
            msg = f"{flag} {prefix}: no files for `{short}` ({', '.join(missing)} not found)"
            m = _manifest(prefix)
            if m is not None:
                try:
                    have = sorted(json.loads(m.read_text())["languages"])
                    msg += f"; {m} lists languages {', '.join(have)}"
                except (OSError, ValueError, KeyError, TypeError):
                    pass
            raise ConfigError(msg + "; make the data with tools/preprocess_data.py or fix the "
                                    "prefix")


def check_beta(beta: Optional[dict], paths: dict, source: str = "--xlda-beta") -> None:
    if not beta:
        return
    bad = {k: v for k, v in beta.items() if not math.isfinite(v) or v < 0}
    if bad:
        raise ConfigError(f"{source} {bad}: weights must be finite and >= 0")
    if sum(beta.values()) <= 0:
        raise ConfigError(f"{source} {beta}: at least one weight must be > 0")
    unknown = sorted(set(beta) - set(paths))
    if unknown:
        raise ConfigError(
            f"{source} names {', '.join(unknown)}, which --data-path gives no data for "
            f"(languages with data: {', '.join(sorted(paths))}); drop them from {source} or "
            f"add their prefixes to --data-path")


def check_tokenizer(cfg: RunConfig, paths: dict, log: Callable[[str], None]) -> None:
    """The tokenizer must be the one the data were made with (the preprocess manifest records
    its sha256 and vocab); without a manifest, every token id must be < its vocab size."""
    d = cfg.data
    if d.tokenizer_type is None:
        if d.tokenizer_model:
            raise ConfigError("--tokenizer-model needs --tokenizer-type")
        return
    from xlda.data.tokenizer import build_tokenizer

    try:
        tok = build_tokenizer(d.tokenizer_type, d.tokenizer_model)
    except (ValueError, OSError) as e:
        raise ConfigError(str(e)) from None
    ident = tok.identity()
    unrecorded = []
    for lang, prefixes in paths.items():
        for prefix in prefixes:
            m = _manifest(prefix)
            rec = None
            if m is not None:
                try:
                    rec = json.loads(m.read_text()).get("tokenizer")
                except (OSError, ValueError) as e:
                    raise ConfigError(f"{m}: unreadable preprocess manifest ({e})") from None
            if not rec or "sha256" not in rec:
                unrecorded.append(prefix)
                continue
            if rec["sha256"] != ident["sha256"]:
                raise ConfigError(
                    f"--tokenizer-model {d.tokenizer_model} (sha256 {ident['sha256'][:12]}..., "
                    f"vocab {ident['vocab_size']}) is not the tokenizer {prefix} was made with "
                    f"({m}: {rec.get('path')}, sha256 {rec['sha256'][:12]}..., vocab "
                    f"{rec.get('vocab_size')}); pass that tokenizer, or preprocess the data again "
                    f"with this one")
    if unrecorded:
        _check_ids(unrecorded, tok.vocab_size, d.tokenizer_model, log)


def _check_ids(prefixes: list, vocab: int, model: str, log) -> None:
    from megatron.core.datasets.indexed_dataset import IndexedDataset

    size = sum(os.path.getsize(p + ".bin") for p in prefixes)
    if size > MAX_SCAN_BYTES:
        log(f"[xlda] note: no preprocess manifest for {len(prefixes)} data prefix(es) and "
            f"{size / 2**30:.0f} GiB of tokens: token ids not checked against --tokenizer-model")
        return
    for prefix in prefixes:
        dtype = IndexedDataset(prefix, multimodal=False).index.dtype
        tokens = np.memmap(prefix + ".bin", dtype=dtype, mode="r")  # the .bin is raw token ids
        top = int(tokens.max()) if tokens.size else -1
        if top >= vocab:
            raise ConfigError(
                f"--tokenizer-model {model} has {vocab} tokens but {prefix} holds token id {top}: "
                f"the data were made with a larger tokenizer; pass that one")
