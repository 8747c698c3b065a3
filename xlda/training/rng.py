"""Capture/restore every RNG a training rank uses, so a resumed run continues bit-identically.

Covers python ``random``, numpy's global RNG, torch CPU (and CUDA when present) and megatron-core's
tensor-parallel RNG tracker (dropout streams). Each rank's state differs (the tracker's model-
parallel seed depends on the TP rank), so checkpoints keep one entry per global rank.
"""
from __future__ import annotations

import random
from typing import Any

import numpy as np
import torch
import torch.distributed as dist


def _tracker():
    from megatron.core.tensor_parallel.random import get_cuda_rng_tracker

    return get_cuda_rng_tracker()


def capture() -> dict[str, Any]:
    """This rank's RNG states (tensors cloned: the live ones keep moving)."""
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state().clone(),
        "cuda": torch.cuda.get_rng_state().clone() if torch.cuda.is_available() else None,
    }
    try:
        state["tracker"] = {k: v.clone() for k, v in _tracker().get_states().items()}
    except (ImportError, AssertionError):
        state["tracker"] = None
    return state


def restore(state: dict[str, Any]) -> None:
    """Inverse of :func:`capture`. A CUDA state saved without a GPU (or vice versa) is skipped."""
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])
    if state.get("cuda") is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state(state["cuda"])
    if state.get("tracker") is not None:
        _tracker().set_states({k: v.clone() for k, v in state["tracker"].items()})


def gather(dst: int = 0) -> list[dict[str, Any]] | None:
    """Every rank's :func:`capture`, as a list by global rank on ``dst`` (None elsewhere)."""
    mine = capture()
    if not (dist.is_available() and dist.is_initialized()):
        return [mine]
    out = [None] * dist.get_world_size() if dist.get_rank() == dst else None
    dist.gather_object(mine, out, dst=dst)
    return out
