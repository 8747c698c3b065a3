"""Single-process megatron-core parallel state on CPU (gloo) for model tests."""
from __future__ import annotations

import socket

import pytest
import torch


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_single_process(seed: int = 1234, tp: int = 1) -> None:
    """Idempotent: gloo world of 1, megatron model parallel state, TP RNG seeded."""
    import xlda.cpu_shims as cpu_shims
    from megatron.core import parallel_state, tensor_parallel

    cpu_shims.maybe_install()
    if not torch.distributed.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        torch.distributed.init_process_group(
            backend, world_size=1, rank=0, init_method=f"tcp://127.0.0.1:{_free_port()}"
        )
    if not parallel_state.model_parallel_is_initialized():
        parallel_state.initialize_model_parallel(tensor_model_parallel_size=tp)
    tensor_parallel.model_parallel_cuda_manual_seed(seed)


@pytest.fixture
def megatron_single():
    """Use in tests that build megatron-core modules; re-seeds the RNG for each test."""
    init_single_process()
    torch.manual_seed(1234)
    yield
