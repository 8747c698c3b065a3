"""The checkpoint directory layout (Megatron-LM's), in one place and torch-free:

    <save>/latest_checkpointed_iteration.txt    the last complete iteration, e.g. "200"
    <save>/iter_0000200/                        one checkpoint (torch_dist files, xlda_state.pt,
                                                run_config.yaml, checksums.json)

Read by the trainer (xlda.training.checkpointing), the SLURM requeue logic (xlda.slurm), the
converter (xlda.checkpoint_conversion.mcore_io) and post-training's start; each raises its own
error type (``error=``) so its command line keeps its exit code.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Optional

from xlda.files import atomic_write

LATEST_FILE = "latest_checkpointed_iteration.txt"
RUN_CONFIG_FILE = "run_config.yaml"
STATE_FILE = "xlda_state.pt"
ITER_RE = re.compile(r"^iter_(\d{7})$")


def iter_dir_name(iteration: int) -> str:
    return f"iter_{iteration:07d}"


def iter_dir(save_dir, iteration: int) -> Path:
    return Path(save_dir) / iter_dir_name(iteration)


def parse_iter_dir(name: str) -> Optional[int]:
    """``iter_0000200`` -> 200; anything else -> None."""
    m = ITER_RE.match(name)
    return int(m.group(1)) if m else None


def read_latest(save_dir, error=ValueError) -> Optional[int]:
    """The iteration ``latest_checkpointed_iteration.txt`` names; None if there is none yet."""
    path = Path(save_dir) / LATEST_FILE
    if not path.exists():
        return None
    text = path.read_text().strip()
    if not text.isdigit():
        raise error(f"{path}: expected an iteration number, found {text[:40]!r}; the trainer "
                    "writes this file: point it at an existing iter_* directory, or delete it "
                    "to start over")
    return int(text)


def write_latest(save_dir, iteration: int) -> None:
    """Publish ``iteration`` as the latest: atomic and durable (never a partial number)."""
    atomic_write(Path(save_dir) / LATEST_FILE, str(iteration))  # as Megatron-LM writes it


def list_iterations(save_dir) -> list[int]:
    d = Path(save_dir)
    if not d.is_dir():
        return []
    return sorted(i for p in d.iterdir() if (i := parse_iter_dir(p.name)) is not None)


def describe_latest(save_dir: Optional[str]) -> str:
    """The last complete checkpoint in words (for an error that tells where to resume)."""
    if not save_dir:
        return "none (no --save directory)"
    try:
        it = read_latest(save_dir)
    except ValueError as e:
        return f"unreadable ({e})"
    if it is None:
        return f"none yet in {save_dir}"
    return f"{iter_dir(save_dir, it)} (iteration {it})"
