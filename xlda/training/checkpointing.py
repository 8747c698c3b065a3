"""Save/load training checkpoints: megatron-core dist_checkpointing + xlda's run state.

What a save and a load do, in order; the pieces live beside it: the directory layout in
xlda.checkpoint_layout, atomic publishing in checkpoint_publish, the xlda_state.pt format in
checkpoint_state, megatron-core's side in checkpoint_mcore, checksums in checkpoint_integrity.

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

import logging
import os
import shutil
import time
from pathlib import Path
from typing import Any, Sequence

import torch
from torch.distributed.checkpoint.api import CheckpointException

from xlda.checkpoint_layout import (LATEST_FILE, RUN_CONFIG_FILE, STATE_FILE, iter_dir,
                                    list_iterations)
from xlda.checkpoint_layout import read_latest as _read_latest
from xlda.training import checkpoint_integrity as integrity
from xlda.training import lifeline, rng
from xlda.training.checkpoint_errors import CheckpointError
from xlda.training.checkpoint_mcore import (LEGACY_COMMON_FILE, has_legacy_common_file,
                                            installed_needs_common_file, layout, mcore_version,
                                            model_keys, sharded_state_dict, unwrap)
from xlda.training.checkpoint_publish import (barrier, fresh_dir, no_space, on_rank0, publish,
                                              rank, root_cause)
from xlda.training.checkpoint_state import load_state, plain, save_state

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
# Files dist_checkpointing's torch_dist writes last / that must exist for a complete checkpoint.
_REQUIRED = ("metadata.json", ".metadata", STATE_FILE)
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
        on_rank0(lambda: fresh_dir(save_dir, target))
        dist_checkpointing.save(sharded_state_dict(model_chunks, optimizer, False), str(target))
        rng_states = rng.gather(dst=0)

        def write_state():
            state = {
                "format_version": FORMAT_VERSION,
                "iteration": iteration,
                "scheduler": scheduler.state_dict() if scheduler is not None else None,
                "extra_state": dict(extra_state or {}),
                "rng_states": rng_states,
                "layout": layout(),
            }
            save_state(state, target / STATE_FILE)
            if run_config is not None:
                import yaml

                (target / RUN_CONFIG_FILE).write_text(
                    yaml.safe_dump(plain(run_config.to_dict()), sort_keys=False)
                )

        on_rank0(write_state)  # (a barrier: every rank's shards are on disk after it)
        files = integrity.hash_files(target)
        # checksums.json is the last file: its presence marks the save complete.
        on_rank0(lambda: (integrity.store_manifest(target, files),
                           publish(save_dir, target, final, iteration)))
    except (Exception, CheckpointException) as exc:  # CheckpointException is a BaseException
        if not no_space(exc, save_dir):
            raise
        if rank() == 0:
            shutil.rmtree(target, ignore_errors=True)  # give the space back
        prev = read_latest(save_dir) if (save_dir / LATEST_FILE).exists() else None
        raise CheckpointError(
            f"no space left on {save_dir} while saving iteration {iteration}; the partial save "
            f"was removed and the previous checkpoint is untouched "
            f"({iter_dir(save_dir, prev) if prev is not None else 'none'}). Free space there or "
            f"pass another --save directory, then resume with --load"
        ) from exc
    if rank() == 0 and keep_last:
        for old in list_iterations(save_dir)[:-keep_last]:
            if old != iteration:
                shutil.rmtree(iter_dir(save_dir, old), ignore_errors=True)
    barrier()
    logger.info("saved checkpoint %s in %.2fs", final, time.perf_counter() - t0)
    return final


def _refuse_non_finite(model_chunks, iteration: int, save_dir: Path) -> None:
    """A checkpoint with NaN/inf weights is never written: "latest" stays the last finite one."""
    bad = []
    for chunk in model_chunks:
        named = [(n, p) for n, p in unwrap(chunk).named_parameters()]
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


def check_complete(path: Path) -> None:
    missing = [name for name in _REQUIRED if not (path / name).exists()]
    if has_legacy_common_file(path) and not (path / LEGACY_COMMON_FILE).exists():
        missing.insert(2, LEGACY_COMMON_FILE)
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
    current = plain(run_config.to_dict()).get("model") or {}
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
    state = load_state(path / STATE_FILE)
    if state.get("iteration") != iteration:
        raise CheckpointError(
            f"{path / STATE_FILE} says iteration {state.get('iteration')}, dir says {iteration}"
        )
    from megatron.core import dist_checkpointing  # after the cheap checks: fast clear errors

    if not has_legacy_common_file(path) and installed_needs_common_file(dist_checkpointing):
        raise CheckpointError(
            f"{path} was saved by megatron-core >= 0.19 (no {LEGACY_COMMON_FILE}: the common "
            f"state is inside the torch_dist files), which the installed megatron-core "
            f"{mcore_version()} cannot read. Load it with megatron-core >= 0.19"
        )
    sharded = sharded_state_dict(model_chunks, optimizer if load_optimizer else None, True)
    try:
        loaded = dist_checkpointing.load(
            sharded, str(path), strict="assume_ok_unexpected" if strict else "log_all"
        )
    except (Exception, CheckpointException) as exc:  # CheckpointException: a BaseException
        raise _load_error(path, files, exc) from exc
    for key, chunk in zip(model_keys(len(model_chunks)), model_chunks):
        unwrap(chunk).load_state_dict(loaded[key], strict=strict)
    if load_optimizer and optimizer is not None:
        optimizer.load_state_dict(loaded["optimizer"])
    if scheduler is not None and state.get("scheduler") is not None:
        scheduler.load_state_dict(state["scheduler"])
    if load_optimizer if load_rng is None else load_rng:
        _restore_rng(state, path)
    barrier()
    logger.info("loaded checkpoint %s in %.2fs", path, time.perf_counter() - t0)
    return iteration, state.get("extra_state", {})


def _verified_manifest(path: Path, verify: bool) -> dict | None:
    """The recorded checksums, verified (a collective) before anything of ``path`` is read."""
    try:
        files = integrity.read_manifest(path)
        if files is None:
            if rank() == 0:
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
    first = root_cause(exc)
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
    saved, now = state.get("layout", {}), layout()
    states = state.get("rng_states") or []
    if saved != now or len(states) != now.get("world_size", 1):
        if rank() == 0:
            logger.warning(
                "%s was saved with layout %s, this run is %s: RNG states not restored (each "
                "rank keeps its seeded RNG)", path, saved, now,
            )
        return
    rng.restore(states[rank()])
