"""The format of ``xlda_state.pt`` (iteration, scheduler, extra state, per-rank RNG states):
tensors and plain values only, read with ``torch.load(weights_only=True)``; numpy arrays (the
RNG state) travel as tensors. A file holding anything else is refused, never unpickled.
"""
from __future__ import annotations

import io
import pickle
import re
from pathlib import Path

import numpy as np
import torch

from xlda.files import atomic_write
from xlda.training.checkpoint_errors import CheckpointError


def encode(obj):
    """State for ``torch.load(weights_only=True)``: numpy arrays (numpy's RNG state) become
    tensors, numpy scalars Python numbers; everything else must already be plain."""
    if isinstance(obj, np.ndarray):
        return {"__ndarray__": torch.from_numpy(np.ascontiguousarray(obj)).clone()}
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, dict):
        return {k: encode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(encode(v) for v in obj)
    return obj


def decode(obj):
    if isinstance(obj, dict):
        if set(obj) == {"__ndarray__"}:
            return obj["__ndarray__"].numpy()
        return {k: decode(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(decode(v) for v in obj)
    return obj


def save_state(state: dict, path: Path) -> None:
    buf = io.BytesIO()
    torch.save(encode(state), buf)
    atomic_write(path, buf.getvalue())


def _numpy_globals() -> list:
    """What a pickled numpy array needs: array reconstruction only, nothing that runs code."""
    core = getattr(np, "_core", None) or np.core
    out = [core.multiarray._reconstruct, np.ndarray, np.dtype]
    out += [type(np.dtype(t)) for t in (np.uint32, np.int64, np.float64)]
    return out


def load_state(path: Path) -> dict:
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
    return decode(state)


def plain(obj):
    """YAML-safe copy (tuples -> lists, dtypes/enums/paths -> str)."""
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if obj is None or isinstance(obj, (bool, int, float, str)):
        return obj
    return str(obj)
