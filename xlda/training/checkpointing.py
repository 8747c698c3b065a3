"""Save/load training checkpoints: megatron-core dist_checkpointing + xlda's run state.

Layout (docs/CONTRACTS.md, "Checkpoints")::

    <save>/iter_0000100/            dist_checkpointing (torch_dist) dir: {"model", "optimizer"}
    <save>/iter_0000100/xlda_state.pt   iteration, scheduler, extra_state, per-rank RNG states
    <save>/iter_0000100/run_config.yaml the resolved RunConfig (when given)
    <save>/latest_checkpointed_iteration.txt   temp file + rename, after every rank finished

An iteration is first written to ``<save>/.iter_0000100.partial/`` and renamed when every rank
is done, so a crash leaves neither a partial ``iter_`` dir nor a "latest" pointing at one.

Model state is ``{"model": chunk.sharded_state_dict()}`` for one model chunk and, as in
Megatron-LM, ``{"model0": ..., "model1": ...}`` for virtual-pipeline chunks. Because tensors are
stored by their global shape (ShardedTensor), a checkpoint can be loaded into another TP/PP/DP
layout: dist_checkpointing reslices on load. RNG states are restored only when the world size
and layout match (they are per rank); otherwise a warning says they were left as seeded.
"""
from __future__ import annotations

import inspect
import json
import logging
import os
import re
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.distributed as dist

from xlda.training import rng

logger = logging.getLogger(__name__)

LATEST_FILE = "latest_checkpointed_iteration.txt"
STATE_FILE = "xlda_state.pt"
RUN_CONFIG_FILE = "run_config.yaml"
FORMAT_VERSION = 1
_ITER_RE = re.compile(r"^iter_(\d{7})$")
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
})


class CheckpointError(RuntimeError):
    """A checkpoint is missing, partial, corrupted or does not fit the model."""


def iter_dir(save_dir: str | os.PathLike, iteration: int) -> Path:
    return Path(save_dir) / f"iter_{iteration:07d}"


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
    path = Path(save_dir) / LATEST_FILE
    if not path.exists():
        return None
    text = path.read_text().strip()
    if not text.isdigit():
        raise CheckpointError(
            f"{path}: expected an iteration number, found {text!r}; fix or delete the file"
        )
    return int(text)


def _write_latest(save_dir: Path, iteration: int) -> None:
    tmp = save_dir / f".{LATEST_FILE}.tmp"
    with open(tmp, "w") as f:
        f.write(f"{iteration}\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, save_dir / LATEST_FILE)  # atomic on POSIX


def list_iterations(save_dir: str | os.PathLike) -> list[int]:
    d = Path(save_dir)
    if not d.is_dir():
        return []
    return sorted(int(m.group(1)) for p in d.iterdir() if (m := _ITER_RE.match(p.name)))


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
    """
    from megatron.core import dist_checkpointing

    t0 = time.perf_counter()
    save_dir = Path(save_dir)
    final = iter_dir(save_dir, iteration)
    # Written under a temporary name and renamed once complete: an iter_ dir is never partial.
    target = save_dir / f".{final.name}.partial"
    if _rank() == 0:
        save_dir.mkdir(parents=True, exist_ok=True)
        if target.exists():  # leftover of a crashed save
            shutil.rmtree(target)
        target.mkdir()
    _barrier()
    dist_checkpointing.save(_sharded_state_dict(model_chunks, optimizer, False), str(target))
    rng_states = rng.gather(dst=0)
    if _rank() == 0:
        state = {
            "format_version": FORMAT_VERSION,
            "iteration": iteration,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "extra_state": dict(extra_state or {}),
            "rng_states": rng_states,
            "layout": _layout(),
        }
        tmp = target / f".{STATE_FILE}.tmp"
        torch.save(state, tmp)
        os.replace(tmp, target / STATE_FILE)
        if run_config is not None:
            import yaml

            (target / RUN_CONFIG_FILE).write_text(
                yaml.safe_dump(_plain(run_config.to_dict()), sort_keys=False)
            )
    _barrier()  # every rank's shards are on disk before the rename and "latest"
    if _rank() == 0:
        if final.exists():  # re-save of an iteration: swap, then drop the old copy
            old = save_dir / f".{final.name}.old"
            shutil.rmtree(old, ignore_errors=True)
            os.replace(final, old)
            os.replace(target, final)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(target, final)
        _write_latest(save_dir, iteration)
        if keep_last:
            for old in list_iterations(save_dir)[:-keep_last]:
                if old != iteration:
                    shutil.rmtree(iter_dir(save_dir, old), ignore_errors=True)
    _barrier()
    logger.info("saved checkpoint %s in %.2fs", final, time.perf_counter() - t0)
    return final


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
) -> tuple[int, dict] | None:
    """Load the latest (or the given ``iteration``) checkpoint under ``load_dir`` into the model,
    optimizer and scheduler; restore this rank's RNG. Returns (iteration, extra_state), or None
    when there is no checkpoint and ``required`` is False (a fresh start).

    ``load_optimizer=False`` (the trainer's --finetune) loads weights only; ``load_rng`` defaults
    to ``load_optimizer``, as Megatron-LM skips the RNG state with --finetune."""
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
        raise CheckpointError(f"{load_dir}: iteration {iteration} requested but {path} is missing")
    check_complete(path)
    _check_run_config(path, run_config, strict)
    try:
        state = torch.load(path / STATE_FILE, map_location="cpu", weights_only=False)
    except Exception as exc:
        raise CheckpointError(f"{path / STATE_FILE} is unreadable ({exc}); the file is corrupted")
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
    except Exception as exc:
        raise CheckpointError(
            f"loading {path} failed: {type(exc).__name__}: {exc}. The checkpoint is corrupted "
            f"or was saved from a different model"
        ) from exc
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


def has_optimizer_state(load_dir: str | os.PathLike) -> bool | None:
    """Whether the checkpoint ``--load`` would read holds optimizer state (None: no checkpoint).
    Converted checkpoints (tools/checkpoint/convert.py) hold the model only."""
    load_dir = Path(load_dir)
    iteration = read_latest(load_dir) if load_dir.is_dir() else None
    if iteration is None:
        return None
    from torch.distributed.checkpoint import FileSystemReader

    try:
        keys = FileSystemReader(str(iter_dir(load_dir, iteration))).read_metadata().state_dict_metadata
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
