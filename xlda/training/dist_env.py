"""Process-group set-up for torchrun, srun, or a plain single process.

torchrun sets RANK/WORLD_SIZE/LOCAL_RANK/MASTER_ADDR/MASTER_PORT; under srun only SLURM_* exist,
so they are derived here (MASTER_ADDR = first host of SLURM_JOB_NODELIST). A bare ``python``
run becomes a world of one on 127.0.0.1.
"""
from __future__ import annotations

import os
import random
import re
import socket
from dataclasses import dataclass

import torch


@dataclass
class DistEnv:
    rank: int
    world_size: int
    local_rank: int
    master_addr: str
    master_port: int


def first_slurm_host(nodelist: str) -> str:
    """``node[003-005,007],gpu1`` -> ``node003`` (the subset of SLURM's hostlist syntax used)."""
    m = re.match(r"([^,\[]+)(\[([^\]]+)\])?", nodelist.strip())
    if not m:
        raise ValueError(f"cannot parse SLURM_JOB_NODELIST={nodelist!r}")
    base, _, ranges = m.groups()
    if not ranges:
        return base
    first = ranges.split(",")[0].split("-")[0]
    return base + first


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def resolve_env(environ=None) -> DistEnv:
    """Fill the torch.distributed env vars from SLURM_* when absent (writes into ``environ``)."""
    env = os.environ if environ is None else environ
    slurm = "SLURM_PROCID" in env and "RANK" not in env
    if slurm:
        env["RANK"] = env["SLURM_PROCID"]
        env["WORLD_SIZE"] = env.get("SLURM_NTASKS", "1")
        env["LOCAL_RANK"] = env.get("SLURM_LOCALID", "0")
        if "MASTER_ADDR" not in env:
            nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
            env["MASTER_ADDR"] = first_slurm_host(nodelist) if nodelist else "127.0.0.1"
        if "MASTER_PORT" not in env:
            # Same on every task of the job, different between concurrent jobs.
            env["MASTER_PORT"] = str(10000 + int(env.get("SLURM_JOB_ID", "0")) % 50000)
    env.setdefault("RANK", "0")
    env.setdefault("WORLD_SIZE", "1")
    env.setdefault("LOCAL_RANK", "0")
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in env:
        if env["WORLD_SIZE"] != "1":
            raise RuntimeError("MASTER_PORT is not set for a multi-process run; launch with "
                               "torchrun or srun, or export MASTER_ADDR/MASTER_PORT")
        env["MASTER_PORT"] = str(_free_port())
    return DistEnv(int(env["RANK"]), int(env["WORLD_SIZE"]), int(env["LOCAL_RANK"]),
                   env["MASTER_ADDR"], int(env["MASTER_PORT"]))


def set_seeds(seed: int) -> None:
    """Python/NumPy/torch seeds plus megatron-core's TP RNG tracker (per TP/PP rank offsets)."""
    import numpy as np
    from megatron.core.tensor_parallel.random import model_parallel_cuda_manual_seed

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    model_parallel_cuda_manual_seed(seed)


def initialize(parallel_config, seed: int) -> DistEnv:
    """Init torch.distributed (if needed), parallel_state and seeds. Idempotent per process."""
    from megatron.core import parallel_state

    cpu = not torch.cuda.is_available()
    if cpu:
        from xlda import cpu_shims

        cpu_shims.maybe_install()
    denv = resolve_env()
    if not torch.distributed.is_initialized():
        backend = parallel_config.distributed_backend or ("gloo" if cpu else "nccl")
        if not cpu:
            torch.cuda.set_device(denv.local_rank)
        if denv.world_size == 1:
            # One process: an in-process store. A TCP store would race every other job on the
            # machine for its port (a free port can be taken again before the store listens).
            torch.distributed.init_process_group(
                backend=backend, store=torch.distributed.HashStore(), rank=0, world_size=1)
        else:
            torch.distributed.init_process_group(
                backend=backend, rank=denv.rank, world_size=denv.world_size,
                init_method=f"tcp://{denv.master_addr}:{denv.master_port}",
            )
    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    parallel_state.initialize_model_parallel(
        tensor_model_parallel_size=parallel_config.tensor_model_parallel_size,
        pipeline_model_parallel_size=parallel_config.pipeline_model_parallel_size,
        context_parallel_size=parallel_config.context_parallel_size,
    )
    set_seeds(seed)
    return denv


def shutdown() -> None:
    from megatron.core import parallel_state

    if parallel_state.model_parallel_is_initialized():
        parallel_state.destroy_model_parallel()
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()
