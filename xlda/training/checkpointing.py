"""Save/load training checkpoints: megatron-core dist_checkpointing + xlda's run state.

Layout (docs/CONTRACTS.md, "Checkpoints")::

    <save>/iter_0000100/            dist_checkpointing (torch_dist) dir: {"model", "optimizer"}
    <save>/iter_0000100/xlda_state.pt   iteration, scheduler, extra_state, per-rank RNG states
    <save>/iter_0000100/run_config.yaml the resolved RunConfig (when given)
    <save>/iter_0000100/checksums.json  size + sha256 of every file above, written last
    <save>/latest_checkpointed_iteration.txt   temp file + rename, after every rank finished

An iteration is first written to ``<save>/.iter_0000100.partial/`` and renamed when every rank
is done, so a crash leaves neither a partial ``iter_`` dir nor a "latest" pointing at one. A
re-save of an existing iteration swaps the two directories atomically (``renameat2``
RENAME_EXCHANGE), so "latest" never names a missing directory either. Non-finite weights are
never saved; a disk that fills up during a save is reported as such and the partial directory
removed, the previous checkpoint untouched.

Loading verifies ``checksums.json`` before anything is unpickled (``verify=False``:
``--no-verify-checkpoint`` skips it); ``xlda_state.pt`` holds only tensors and plain values and
is read with ``torch.load(weights_only=True)``. torch_dist's ``.metadata`` is a pickle: a
checkpoint is code, load only checkpoints you trust.

Model state is ``{"model": chunk.sharded_state_dict()}`` for one model chunk and, as in
Megatron-LM, ``{"model0": ..., "model1": ...}`` for virtual-pipeline chunks. Because tensors are
stored by their global shape (ShardedTensor), a checkpoint can be loaded into another TP/PP/DP
layout: dist_checkpointing reslices on load. RNG states are restored only when the world size
and layout match (they are per rank); otherwise a warning says they were left as seeded.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import errno
import inspect
import json
import logging
import os
import pickle
import re
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch
import torch.distributed as dist
from torch.distributed.checkpoint.api import CheckpointException

from xlda.checkpoint_layout import (LATEST_FILE, RUN_CONFIG_FILE, STATE_FILE, iter_dir,
                                    list_iterations, write_latest)
from xlda.checkpoint_layout import read_latest as _read_latest
from xlda.files import fsync_path
from xlda.training import checkpoint_integrity as integrity
from xlda.training import lifeline, rng

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Files dist_checkpointing's torch_dist writes last / that must exist for a complete checkpoint.
_REQUIRED = ("metadata.json", ".metadata", STATE_FILE)
# megatron-core <= 0.18 writes the common (non-sharded) state to common.pt and records
# "common_backend" in metadata.json; 0.19 stores it inside the torch_dist files instead.
_LEGACY_COMMON_FILE = "common.pt"
# ModelConfig fields that change how the model runs, not its weights: may differ on resume.
EXECUTION_ONLY_FIELDS = frozenset({
    "attention_backend", "recompute_granularity", "recompute_method", "recompute_num_layers",
    "recompute_modules", "use_cpu_initialization", "fp8", "fp8_recipe", "bf16", "fp16",
    "params_dtype", "sequence_parallel", "tensor_model_parallel_size",
    "pipeline_model_parallel_size", "context_parallel_size", "perform_initialization",
    # which tokens attend to which: no weight depends on it (post-training loads an XLDA-masked
    # pretraining checkpoint and trains it with the document mask)
    "attention_mask_type",
})


class CheckpointError(RuntimeError):
    """A checkpoint is missing, partial, corrupted or does not fit the model."""


def _rank() -> int:
    return dist.get_rank() if dist.is_available() and dist.is_initialized() else 0


def _barrier() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _unwrap(chunk: torch.nn.Module) -> torch.nn.Module:
    # DDP / Float16Module wrappers keep the GPTModel in .module; state keys are GPTModel's own.
    from megatron.core.distributed import DistributedDataParallel
    from megatron.core.transformer.module import Float16Module

    wrappers: tuple[type, ...] = (DistributedDataParallel, Float16Module,
                                  torch.nn.parallel.DistributedDataParallel)
    while isinstance(chunk, wrappers):
        chunk = chunk.module
    return chunk


def _model_keys(n: int) -> list[str]:
    return ["model"] if n == 1 else [f"model{i}" for i in range(n)]


def _layout() -> dict[str, int]:
    try:
        from megatron.core import parallel_state as ps

        return {
            "world_size": dist.get_world_size() if dist.is_initialized() else 1,
            "tp": ps.get_tensor_model_parallel_world_size(),
            "pp": ps.get_pipeline_model_parallel_world_size(),
            "dp": ps.get_data_parallel_world_size(),
        }
    except (AssertionError, AttributeError, RuntimeError):
        return {"world_size": dist.get_world_size() if dist.is_initialized() else 1}


def _sharded_state_dict(model_chunks: Sequence[torch.nn.Module], optimizer, is_loading: bool):
    sd: dict[str, Any] = {}
    for key, chunk in zip(_model_keys(len(model_chunks)), model_chunks):
        sd[key] = _unwrap(chunk).sharded_state_dict()
    if optimizer is not None:
        sd["optimizer"] = optimizer.sharded_state_dict(sd, is_loading=is_loading)
    return sd


def read_latest(save_dir: str | os.PathLike) -> int | None:
    """The iteration named by ``latest_checkpointed_iteration.txt``, or None if there is none."""
    return _read_latest(save_dir, error=CheckpointError)


def save_checkpoint(
    save_dir: str | os.PathLike,
    iteration: int,
    model_chunks: Sequence[torch.nn.Module],
    optimizer,
    scheduler,
    extra_state: dict | None = None,
    run_config=None,
    keep_last: int | None = None,
) -> Path:
    """Save a checkpoint of ``iteration`` (a collective: call on every rank). Returns its dir.

    ``keep_last``: after the new checkpoint is complete, delete all but the newest K iter dirs.
    Raises :class:`CheckpointError` (nothing written) if a parameter is NaN/inf, and with "no
    space left on <dir>" when the disk fills up (the partial directory is removed).
    """
    from megatron.core import dist_checkpointing

    t0 = time.perf_counter()
    save_dir = Path(save_dir)
    final = iter_dir(save_dir, iteration)
    _refuse_non_finite(model_chunks, iteration, save_dir)
    lifeline.install()  # the writer processes started below die with this one
    # Written under a temporary name and renamed once complete: an iter_ dir is never partial.
    target = save_dir / f".{final.name}.partial"
    try:
        _on_rank0(lambda: _fresh_dir(save_dir, target))
        dist_checkpointing.save(_sharded_state_dict(model_chunks, optimizer, False), str(target))
        rng_states = rng.gather(dst=0)

        def write_state():
            state = {
                "format_version": FORMAT_VERSION,
                "iteration": iteration,
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "extra_state": dict(extra_state or {}),
                "rng_states": rng_states,
                "layout": _layout(),
            }
            _save_state(state, target / STATE_FILE)
            if run_config is not None:
                import yaml

                (target / RUN_CONFIG_FILE).write_text(
                    yaml.safe_dump(_plain(run_config.to_dict()), sort_keys=False)
                )

        _on_rank0(write_state)  # (a barrier: every rank's shards are on disk after it)
        files = integrity.hash_files(target)
        # checksums.json is the last file: its presence marks the save complete.
        _on_rank0(lambda: (integrity.store_manifest(target, files),
                           _publish(save_dir, target, final, iteration)))
    except (Exception, CheckpointException) as exc:  # CheckpointException is a BaseException
        if not _no_space(exc, save_dir):
            raise
        if _rank() == 0:
            shutil.rmtree(target, ignore_errors=True)  # give the space back
        prev = read_latest(save_dir) if (save_dir / LATEST_FILE).exists() else None
        raise CheckpointError(
            f"no space left on {save_dir} while saving iteration {iteration}; the partial save "
            f"was removed and the previous checkpoint is untouched "
            f"({iter_dir(save_dir, prev) if prev is not None else 'none'}). Free space there or "
            f"pass another --save directory, then resume with --load"
        ) from exc
    if _rank() == 0 and keep_last:
        for old in list_iterations(save_dir)[:-keep_last]:
            if old != iteration:
                shutil.rmtree(iter_dir(save_dir, old), ignore_errors=True)
    _barrier()
    logger.info("saved checkpoint %s in %.2fs", final, time.perf_counter() - t0)
    return final


def _fresh_dir(save_dir: Path, target: Path) -> None:
    save_dir.mkdir(parents=True, exist_ok=True)
    if target.exists():  # leftover of a crashed save
        shutil.rmtree(target)
    target.mkdir()


def _on_rank0(fn) -> None:
    """Run ``fn`` on rank 0 only; if it fails every rank raises (none is left waiting in the next
    collective). A collective: acts as a barrier."""
    err = None
    if _rank() == 0:
        try:
            fn()
        except (Exception, CheckpointException) as exc:
            err = exc
    failed = any(integrity.all_gather(err is not None))
    if err is not None:
        raise err
    if failed:
        raise CheckpointError("rank 0 failed while saving the checkpoint (its log says why)")


def _refuse_non_finite(model_chunks, iteration: int, save_dir: Path) -> None:
    """A checkpoint with NaN/inf weights is never written: "latest" stays the last finite one."""
    bad = []
    for chunk in model_chunks:
        named = [(n, p) for n, p in _unwrap(chunk).named_parameters()]
        if not named:
            continue
        ok = torch.stack([torch.isfinite(p).all() for _, p in named]).cpu()  # one sync
        bad += [n for (n, _), good in zip(named, ok.tolist()) if not good]
    bad = [n for part in integrity.all_gather(bad) for n in part]
    if bad:
        prev = read_latest(save_dir) if (save_dir / LATEST_FILE).exists() else None
        raise CheckpointError(
            f"refusing to save iteration {iteration}: non-finite (NaN/inf) values in "
            f"{', '.join(sorted(set(bad))[:5])}; the last finite checkpoint is "
            f"{iter_dir(save_dir, prev) if prev is not None else 'none'}"
        )


def _no_space(exc: BaseException, save_dir: Path) -> bool:
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


def _root_cause(exc: BaseException) -> str:
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


def _exchange(a: Path, b: Path) -> bool:
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


def _publish(save_dir: Path, target: Path, final: Path, iteration: int) -> None:
    """Rename the complete ``target`` to ``final`` and point "latest" at it; a kill at any point
    leaves "latest" naming a complete directory."""
    if not final.exists():
        os.replace(target, final)
    elif _exchange(target, final):  # re-save of an iteration: one atomic swap
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


def _encode(obj):
    """State for ``torch.load(weights_only=True)``: numpy arrays (numpy's RNG state) become
    tensors, numpy scalars Python numbers; everything else must already be plain."""
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(obj)).clone()}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: _encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_encode(v) for v in obj)
    return obj


def _decode(obj):
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return obj["__ndarray__"].numpy()
        return {k: _decode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_decode(v) for v in obj)
    return obj


def _save_state(state: dict, path: Path) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        torch.save(_encode(state), f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _numpy_globals() -> list:
    """What a pickled numpy array needs: array reconstruction only, nothing that runs code."""
    core = getattr(np, "_core", None) or np.core
    out = [core.multiarray._reconstruct, np.ndarray, np.dtype]
    out += [type(np.dtype(t)) for t in (np.uint32, np.int64, np.float64)]
    return out


def _load_state(path: Path) -> dict:
    """``xlda_state.pt`` with ``weights_only=True``; checkpoints of earlier xlda versions pickled
    numpy's RNG state as an ndarray: allowed (array reconstruction only). Anything else is
    refused rather than unpickled."""
    try:
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except pickle.UnpicklingError as exc:
            if "numpy" not in str(exc):
                raise
            with torch.serialization.safe_globals(_numpy_globals()):
                state = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        # torch's message: the refused global, or the opcode of a file that is no torch zip
        why = re.search(r"unsupported GLOBAL [\w.]+|Unsupported global: GLOBAL [\w.]+|"
                        r"Unsupported operand \d+", str(exc), re.IGNORECASE)
        why = why[0] if why else str(exc).strip().splitlines()[0]
        if "global" not in why.lower():
            raise CheckpointError(f"{path} is unreadable ({why}); the file is corrupted (it was "
                                  f"not unpickled)") from None
        raise CheckpointError(
            f"{path} holds pickled objects outside the allowed types (tensors, plain values, "
            f"numpy arrays), so it was not unpickled: a crafted file could run code ({why})"
        ) from None
    except Exception as exc:
        raise CheckpointError(
            f"{path} is unreadable ({exc}); the file is corrupted") from None
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} is not an xlda state dict ({type(state).__name__})")
    return _decode(state)


def _plain(obj):
    """YAML-safe copy (tuples -> lists, dtypes/enums/paths -> str)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)


def _has_legacy_common_file(path: Path) -> bool:
    """Whether this checkpoint's own dist_checkpointing config says it keeps a common.pt."""
    try:
        return "common_backend" in json.loads((path / "metadata.json").read_text())
    except (OSError, ValueError, TypeError):
        return False  # missing or unreadable: metadata.json itself is reported / fails the load


def _installed_needs_common_file(dist_checkpointing) -> bool:
    """megatron-core <= 0.18 loads the common state only from common.pt (``common_strategy``)."""
    return "common_strategy" in inspect.signature(dist_checkpointing.load).parameters


def _mcore_version() -> str:
    import megatron.core

    return getattr(megatron.core, "__version__", "?")


def check_complete(path: Path) -> None:
    missing = [name for name in _REQUIRED if not (path / name).exists()]
    if _has_legacy_common_file(path) and not (path / _LEGACY_COMMON_FILE).exists():
        missing.insert(2, _LEGACY_COMMON_FILE)
    if missing:
        raise CheckpointError(
            f"checkpoint {path} is incomplete (missing {', '.join(missing)}): the run probably "
            f"died while saving it. Point {path.parent / LATEST_FILE} at an earlier iteration "
            f"({list_iterations(path.parent)} exist) or delete {path}"
        )


def model_config_diff(saved: dict, current: dict) -> dict[str, tuple[Any, Any]]:
    """{field: (in checkpoint, now)} for ModelConfig fields that differ and affect weights."""
    out = {}
    for key in sorted(set(saved) | set(current)):
        if key in EXECUTION_ONLY_FIELDS:
            continue
        a, b = saved.get(key, "<absent>"), current.get(key, "<absent>")
        if a != b:
            out[key] = (a, b)
    return out


def _check_run_config(path: Path, run_config, strict: bool) -> None:
    cfg_file = path / RUN_CONFIG_FILE
    if run_config is None or not cfg_file.exists():
        return
    import yaml

    from xlda.model.config import ModelConfig

    saved = (yaml.safe_load(cfg_file.read_text()) or {}).get("model") or {}
    current = _plain(run_config.to_dict()).get("model") or {}
    # Resolved values, not recipe nulls: a converter writes kv_channels: 32 where a recipe says null.
    diff = model_config_diff(ModelConfig.weight_shaping(saved), ModelConfig.weight_shaping(current))
    if diff:
        lines = ", ".join(f"{k}: checkpoint={a!r} vs now={b!r}" for k, (a, b) in diff.items())
        msg = f"model config of {cfg_file} differs from this run's: {lines}"
        if strict:
            raise CheckpointError(msg + "; load it with the checkpoint's model settings")
        logger.warning(msg)


def load_checkpoint(
    load_dir: str | os.PathLike,
    model_chunks: Sequence[torch.nn.Module],
    optimizer,
    scheduler,
    strict: bool = True,
    run_config=None,
    iteration: int | None = None,
    required: bool = False,
    load_optimizer: bool = True,
    load_rng: bool | None = None,
    verify: bool = True,
) -> tuple[int, dict] | None:
    """Load the latest (or the given ``iteration``) checkpoint under ``load_dir`` into the model,
    optimizer and scheduler; restore this rank's RNG. Returns (iteration, extra_state), or None
    when there is no checkpoint and ``required`` is False (a fresh start).

    ``load_optimizer=False`` (the trainer's --finetune) loads weights only; ``load_rng`` defaults
    to ``load_optimizer``, as Megatron-LM skips the RNG state with --finetune.

    ``verify`` (``--no-verify-checkpoint`` turns it off): check every file against the
    checksums recorded at save time before anything is read; a mismatch is a CheckpointError."""
    t0 = time.perf_counter()
    load_dir = Path(load_dir)
    if iteration is None:
        if not load_dir.is_dir():
            if required:
                raise CheckpointError(f"--load {load_dir}: directory does not exist")
            return None
        iteration = read_latest(load_dir)
        if iteration is None:
            if required:
                found = list_iterations(load_dir)
                raise CheckpointError(
                    f"--load {load_dir}: no {LATEST_FILE} (iter dirs present: {found or 'none'});"
                    " a save never completed there"
                )
            return None
    path = iter_dir(load_dir, iteration)
    if not path.is_dir():
        left = [p.name for p in (load_dir / f".{path.name}.partial", load_dir / f".{path.name}.old")
                if p.is_dir()]
        raise CheckpointError(
            f"{load_dir}: iteration {iteration} requested but {path} is missing"
            + (f" ({', '.join(left)} left by an interrupted save: if its "
               f"{integrity.MANIFEST_FILE} exists it is complete; rename it to {path.name})"
               if left else ""))
    check_complete(path)
    files = _verified_manifest(path, verify)
    _check_run_config(path, run_config, strict)
    state = _load_state(path / STATE_FILE)
    if state.get("iteration") != iteration:
        raise CheckpointError(
            f"{path / STATE_FILE} says iteration {state.get('iteration')}, dir says {iteration}"
        )
    from megatron.core import dist_checkpointing  # after the cheap checks: fast clear errors

    if not _has_legacy_common_file(path) and _installed_needs_common_file(dist_checkpointing):
        raise CheckpointError(
            f"{path} was saved by megatron-core >= 0.19 (no {_LEGACY_COMMON_FILE}: the common "
            f"state is inside the torch_dist files), which the installed megatron-core "
            f"{_mcore_version()} cannot read. Load it with megatron-core >= 0.19"
        )
    sharded = _sharded_state_dict(model_chunks, optimizer if load_optimizer else None, True)
    try:
        loaded = dist_checkpointing.load(
            sharded, str(path), strict="assume_ok_unexpected" if strict else "log_all"
        )
    except (Exception, CheckpointException) as exc:  # CheckpointException: a BaseException
        raise _load_error(path, files, exc) from exc
    for key, chunk in zip(_model_keys(len(model_chunks)), model_chunks):
        _unwrap(chunk).load_state_dict(loaded[key], strict=strict)
    if load_optimizer and optimizer is not None:
        optimizer.load_state_dict(loaded["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if load_optimizer if load_rng is None else load_rng:
        _restore_rng(state, path)
    _barrier()
    logger.info("loaded checkpoint %s in %.2fs", path, time.perf_counter() - t0)
    return iteration, state.get("extra_state", {})


def _verified_manifest(path: Path, verify: bool) -> dict | None:
    """The recorded checksums, verified (a collective) before anything of ``path`` is read."""
    try:
        files = integrity.read_manifest(path)
        if files is None:
            if _rank() == 0:
                logger.warning("%s has no %s (saved by an older xlda or a converter): its files "
                               "are not verified", path, integrity.MANIFEST_FILE)
        elif verify:
            integrity.verify_manifest(path, files)
    except integrity.CorruptFilesError as exc:
        found = ", ".join(f"{f}: {why}" for f, why in exc.problems[:5])
        raise CheckpointError(
            f"checkpoint {path} failed verification, nothing was loaded: {found}. Restore the "
            f"file(s) from a copy, or load an earlier iteration (point "
            f"{path.parent / LATEST_FILE} at one of {list_iterations(path.parent)}); "
            f"--no-verify-checkpoint skips this check (only for a checkpoint you trust)"
        ) from None
    return files


def _load_error(path: Path, files: dict | None, exc: BaseException) -> CheckpointError:
    """A CheckpointError for a failed dist_checkpointing.load that names the damaged file."""
    first = _root_cause(exc)
    try:
        damaged = integrity.find_damaged(path, files)
    except Exception:  # noqa: BLE001 - the diagnosis must not hide the original error
        damaged = []
    if damaged:
        what = "; ".join(f"{f} is {why}" if why == "missing" else f"{f}: {why}"
                         for f, why in damaged[:5])
        return CheckpointError(
            f"loading {path} failed: {what}. Restore the file(s) from a copy or load an earlier "
            f"iteration (point {path.parent / LATEST_FILE} at one of "
            f"{list_iterations(path.parent)}) [{first}]")
    return CheckpointError(
        f"loading {path} failed: {first}. The checkpoint is corrupted "
        f"or was saved from a different model")


def has_optimizer_state(load_dir: str | os.PathLike) -> bool | None:
    """Whether the checkpoint ``--load`` would read holds optimizer state (None: no checkpoint).
    Converted checkpoints (tools/checkpoint/convert.py) hold the model only."""
    load_dir = Path(load_dir)
    iteration = read_latest(load_dir) if load_dir.is_dir() else None
    if iteration is None:
        return None
    from torch.distributed.checkpoint import FileSystemReader

    path = iter_dir(load_dir, iteration)
    try:
        files = integrity.read_manifest(path)
    except integrity.CorruptFilesError:
        return True  # load_checkpoint reports it
    meta = path / ".metadata"
    # .metadata is a pickle: never read it before its recorded checksum matches
    if files is not None and (".metadata" not in files or not meta.is_file()
                              or integrity.sha256_file(meta) != files[".metadata"]["sha256"]):
        return True  # load_checkpoint verifies everything and names what is wrong
    try:
        keys = FileSystemReader(str(path)).read_metadata().state_dict_metadata
    except Exception:  # missing or torn: load_checkpoint reports it with its own clear error
        return True
    return any(k.startswith("optimizer.") for k in keys)


def _restore_rng(state: dict, path: Path) -> None:
    saved, now = state.get("layout", {}), _layout()
    states = state.get("rng_states") or []
    if saved != now or len(states) != now.get("world_size", 1):
        if _rank() == 0:
            logger.warning(
                "%s was saved with layout %s, this run is %s: RNG states not restored (each "
                "rank keeps its seeded RNG)", path, saved, now,
            )
        return
    rng.restore(states[_rank()])
