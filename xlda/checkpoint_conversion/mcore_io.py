"""Read/write the model part of xlda's megatron-core dist checkpoints as full tensors.

torch_dist checkpoints store global tensors (TP/PP only decide who writes which slice), so one
process can read every model tensor whole, and a checkpoint written from full tensors loads at any
TP/PP. Only model tensors are touched: optimizer states are neither read nor written.
"""
from __future__ import annotations

import contextlib
import logging
import re
import shutil
import tempfile
from pathlib import Path

import torch
import yaml
from torch.distributed.checkpoint.api import CheckpointException

from xlda.checkpoint_conversion.arch import ConversionError
from xlda.checkpoint_conversion.staging import Staging

log = logging.getLogger(__name__)

from xlda.checkpoint_layout import LATEST_FILE as TRACKER
from xlda.checkpoint_layout import RUN_CONFIG_FILE as RUN_CONFIG
from xlda.checkpoint_layout import STATE_FILE as XLDA_STATE
from xlda.checkpoint_layout import iter_dir_name, parse_iter_dir, read_latest, write_latest
_MODEL_PREFIXES = ("embedding.", "decoder.", "output_layer.", "mtp.")
_PER_LAYER = re.compile(r"^decoder\.layers\.\d+\.")


@contextlib.contextmanager
def dist_session():
    """dist_checkpointing needs a process group: a gloo world of one unless one exists (then
    torn down again, so a caller's process is left as it was)."""
    from xlda import cpu_shims

    cpu_shims.maybe_install()
    if torch.distributed.is_initialized():
        yield
        return
    with tempfile.TemporaryDirectory(prefix="xlda_convert_") as tmp:
        torch.distributed.init_process_group("gloo", init_method=f"file://{tmp}/store", rank=0, world_size=1)
        try:
            yield
        finally:
            torch.distributed.destroy_process_group()


def resolve_iteration(load_dir, iteration: int | None = None) -> tuple[Path, int]:
    """-> (iter dir, iteration). ``load_dir`` is the --save dir of a run (or an iter_* dir itself)."""
    load_dir = Path(load_dir)
    if not load_dir.is_dir():
        raise ConversionError(f"--load-dir {load_dir} does not exist")
    own = parse_iter_dir(load_dir.name)
    if own is not None and iteration is None:
        it_dir, iteration = load_dir, own
    else:
        if iteration is None:
            iteration = read_latest(load_dir, error=ConversionError)
            if iteration is None:
                found = sorted(p.name for p in load_dir.glob("iter_*"))
                raise ConversionError(
                    f"{load_dir / TRACKER} not found: {load_dir} holds no finished checkpoint"
                    + (f" (iteration dirs present: {found}; pick one with --iteration)" if found else ""))
        it_dir = load_dir / iter_dir_name(iteration)
        if not it_dir.is_dir():
            raise ConversionError(f"checkpoint directory {it_dir} is missing (iteration {iteration}); "
                                  "pass an existing one with --iteration")
    if not (it_dir / "metadata.json").exists():
        raise ConversionError(f"{it_dir / 'metadata.json'} is missing: not a dist checkpoint, or the save was "
                              "interrupted; use an earlier iteration with --iteration")
    _verify_checksums(it_dir)
    return it_dir, iteration


def _verify_checksums(it_dir: Path) -> None:
    """The files must match the checksums the trainer recorded, before .metadata (a pickle) is
    read; directories without checksums.json (older saves, converter output) are taken as is."""
    from xlda.training import checkpoint_integrity as integrity

    try:
        files = integrity.read_manifest(it_dir) or {}
        # missing files are named by the reads below; here: are present ones as recorded?
        integrity.verify_manifest(it_dir, {n: r for n, r in files.items() if (it_dir / n).exists()})
    except integrity.CorruptFilesError as e:
        raise ConversionError(f"{it_dir} failed verification, nothing was read: {e}; restore the "
                              "file(s) or use an earlier iteration with --iteration") from None


def read_run_config(it_dir: Path) -> dict:
    path = Path(it_dir) / RUN_CONFIG
    if not path.exists():
        raise ConversionError(f"{path} is missing; the converter needs the model section of the run "
                              "config the checkpoint was trained with (copy the recipe there)")
    try:
        d = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise ConversionError(f"{path}: invalid YAML: {e}") from None
    if not isinstance(d, dict) or not isinstance(d.get("model"), dict):
        raise ConversionError(f"{path}: no 'model' section")
    return d


def load_model_tensors(it_dir: Path) -> dict[str, torch.Tensor]:
    """Every model tensor of a dist checkpoint, whole, keyed by its dist-checkpoint key."""
    from megatron.core import dist_checkpointing

    with dist_session():
        return _load_model_tensors(it_dir)


def _load_model_tensors(it_dir: Path) -> dict[str, torch.Tensor]:
    from megatron.core import dist_checkpointing

    try:
        meta = dist_checkpointing.load_tensors_metadata(str(it_dir))
    except Exception as e:  # a torn or foreign directory
        raise ConversionError(f"{it_dir}: cannot read dist-checkpoint metadata ({type(e).__name__}: {e}); "
                              "the checkpoint is incomplete or not a torch_dist checkpoint") from None
    wanted = {k: v for k, v in meta.items() if k.startswith(_MODEL_PREFIXES)}
    if not wanted:
        raise ConversionError(f"{it_dir}: no model tensors (embedding.*, decoder.*) in the checkpoint")
    log.info("loading %d model tensors from %s", len(wanted), it_dir)
    try:
        loaded = dist_checkpointing.load(wanted, str(it_dir), validate_access_integrity=False)
    except (Exception, CheckpointException) as e:  # torch's CheckpointException is a BaseException
        missing = re.search(r"No such file or directory: '([^']+)'", str(e))
        what = f"{missing[1]} is missing" if missing else f"{type(e).__name__}: {str(e)[-500:]}"
        raise ConversionError(f"{it_dir}: reading tensors failed ({what}); the checkpoint files are "
                              "incomplete: use an earlier iteration with --iteration") from None
    return {k: v for k, v in loaded.items() if k in wanted}  # (load() also returns content_metadata)


def load_model_objects(it_dir: Path) -> list:
    """The model's ShardedObjects (modules' ``_extra_state``, e.g. TE fp8 metadata), with data."""
    from megatron.core import dist_checkpointing
    from megatron.core.dist_checkpointing.mapping import ShardedObject
    from megatron.core.dist_checkpointing.serialization import load_sharded_metadata

    with dist_session():
        meta = load_sharded_metadata(str(it_dir))
        objs = {k: v for k, v in meta.items() if isinstance(v, ShardedObject) and v.key.startswith(_MODEL_PREFIXES)}
        if not objs:
            return []
        loaded = dist_checkpointing.load(objs, str(it_dir), validate_access_integrity=False)
    return [ShardedObject(o.key, loaded[k], o.global_shape, o.global_offset, replica_id=0) for k, o in objs.items()]


_LINEARS = ("linear_qkv", "linear_proj", "linear_fc1", "linear_fc2", "eh_proj")


def extra_state_objects(state: dict[str, torch.Tensor], num_layers: int) -> list:
    """Empty ``_extra_state`` objects for the linear layers of a model written from plain tensors:
    megatron-core's sharded_state_dict has one per linear (per layer) and loading requires them;
    None is what a fresh local-spec module holds and what TE modules accept as "nothing saved"."""
    from megatron.core.dist_checkpointing.mapping import ShardedObject

    out = []
    for key in state:
        module, _, leaf = key.rpartition(".")
        if leaf != "weight" or module.rpartition(".")[2] not in _LINEARS:
            continue
        if key.startswith("decoder.layers.") and not _PER_LAYER.match(key):  # stacked [L, ...]
            out += [ShardedObject(f"{module}._extra_state", None, (num_layers,), (i,), replica_id=0)
                    for i in range(num_layers)]
        else:
            out.append(ShardedObject(f"{module}._extra_state", None, (1,), (0,), replica_id=0))
    return out


def is_per_layer(state: dict) -> bool:
    """Whether layer keys are per layer (non_homogeneous_layers) rather than stacked [L, ...]."""
    return any(_PER_LAYER.match(k) for k in state)


def fresh_xlda_state(iteration: int, converted_from: str) -> dict:
    """xlda_state.pt of a converted checkpoint: no scheduler/RNG to restore (load without optimizer)."""
    return {"format_version": 1, "iteration": iteration, "scheduler": None,
            "extra_state": {"converted_from": converted_from}, "rng_states": [], "layout": {}}


def write_model_checkpoint(save_dir, iteration: int, state: dict[str, torch.Tensor], objects: list,
                           run_config: dict, xlda_state: dict | Path) -> Path:
    """Write ``{"model": ...}``, run_config.yaml and xlda_state.pt (a dict, or a file to copy), then
    the tracker file: "latest" never points at a partial checkpoint."""
    from megatron.core import dist_checkpointing
    from megatron.core.dist_checkpointing import ShardedTensor

    save_dir = Path(save_dir)
    it_dir = save_dir / iter_dir_name(iteration)
    sharded = {k: ShardedTensor.from_rank_offsets(k, t.contiguous(), replica_id=0) for k, t in state.items()}
    for o in objects:
        sharded[o.unique_key] = o
    meta = {"singleton_local_shards": False, "non_homogeneous_layers": is_per_layer(state)}
    log.info("writing %d model tensors and %d _extra_state objects to %s", len(state), len(objects), it_dir)
    # Written as the trainer writes a checkpoint: into .iter_*.partial, renamed when complete.
    with Staging(it_dir, stage_name=f".{it_dir.name}.partial") as stage:
        with dist_session():
            dist_checkpointing.save({"model": sharded}, str(stage.path), content_metadata=meta)
        (stage.path / RUN_CONFIG).write_text(yaml.safe_dump(run_config, sort_keys=False))
        if isinstance(xlda_state, dict):
            torch.save(xlda_state, stage.path / XLDA_STATE)
        else:
            shutil.copyfile(xlda_state, stage.path / XLDA_STATE)
    try:
        write_latest(save_dir, iteration)
    except OSError as e:
        raise ConversionError(f"{save_dir / TRACKER}: cannot write it ({e}); {it_dir} is complete: write "
                              f"{iteration} into that file, or pass --iteration {iteration} when loading") from None
    return it_dir
