"""What xlda's checkpoints need to know about megatron-core: the sharded state dict of the
(wrapped) model chunks and the optimizer, the parallel layout, and the 0.16 - 0.19 difference in
where dist_checkpointing keeps the common state (common.pt or inside the torch_dist files).
"""
from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any, Sequence

import torch
import torch.distributed as dist


# megatron-core <= 0.18 writes the common (non-sharded) state to common.pt and records
# "common_backend" in metadata.json; 0.19 stores it inside the torch_dist files instead.
LEGACY_COMMON_FILE = "common.pt"


def unwrap(chunk: torch.nn.Module) -> torch.nn.Module:
    # DDP / Float16Module wrappers keep the GPTModel in .module; state keys are GPTModel's own.
    from megatron.core.distributed import DistributedDataParallel
    from megatron.core.transformer.module import Float16Module

    wrappers: tuple[type, ...] = (DistributedDataParallel, Float16Module,
                                  torch.nn.parallel.DistributedDataParallel)
    while isinstance(chunk, wrappers):
        chunk = chunk.module
    return chunk


def model_keys(n: int) -> list[str]:
    return ["model"] if n == 1 else [f"model{i}" for i in range(n)]


def layout() -> dict[str, int]:
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


def sharded_state_dict(model_chunks: Sequence[torch.nn.Module], optimizer, is_loading: bool):
    sd: dict[str, Any] = {}
    for key, chunk in zip(model_keys(len(model_chunks)), model_chunks):
        sd[key] = unwrap(chunk).sharded_state_dict()
    if optimizer is not None:
        sd["optimizer"] = optimizer.sharded_state_dict(sd, is_loading=is_loading)
    return sd


def has_legacy_common_file(path: Path) -> bool:
    """Whether this checkpoint's own dist_checkpointing config says it keeps a common.pt."""
    try:
        return "common_backend" in json.loads((path / "metadata.json").read_text())
    except (OSError, ValueError, TypeError):
        return False  # missing or unreadable: metadata.json itself is reported / fails the load


def installed_needs_common_file(dist_checkpointing) -> bool:
    """megatron-core <= 0.18 loads the common state only from common.pt (``common_strategy``)."""
    return "common_strategy" in inspect.signature(dist_checkpointing.load).parameters


def mcore_version() -> str:
    import megatron.core

    return getattr(megatron.core, "__version__", "?")
