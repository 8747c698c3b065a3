"""Run a function in N gloo processes on CPU, collecting each rank's result or exception.

Tests of TP/PP/DP layouts need real process groups. ``run_distributed(fn, world_size, ...)``
spawns ``world_size`` processes (torch.multiprocessing, "spawn"), sets RANK/WORLD_SIZE/
MASTER_ADDR/MASTER_PORT on a free port, initialises a gloo process group, installs the CPU
shims, calls ``fn(rank, world_size, *args)`` and sends its (picklable) return value back.
A failure on any rank raises :class:`DistributedRunError` naming the rank and carrying its
traceback; a hung run is killed after ``timeout`` seconds and reported as such.

``fn`` must be importable by the children (a module-level function, not a lambda/closure):
"spawn" re-imports its module.
"""
from __future__ import annotations

import os
import queue
import socket
import time
import traceback
from typing import Any, Callable, Sequence

import torch.multiprocessing as mp


class DistributedRunError(RuntimeError):
    """A rank raised, died or the run timed out."""


def free_port() -> int:
    """A TCP port that was free a moment ago (bind to 0 and let the OS choose)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _worker(rank, world_size, port, fn, args, env, results, shims):
    os.environ.update(env)
    os.environ.update(
        RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(world_size),
        MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
    )
    try:
        import torch
        import torch.distributed as dist

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        if shims:  # imports megatron-core: seconds per process, so optional
            from xlda import cpu_shims

            cpu_shims.maybe_install()
        dist.init_process_group("gloo", rank=rank, world_size=world_size)
        try:
            out = fn(rank, world_size, *args)
        finally:
            _teardown()
        results.put((rank, "ok", out))
    except BaseException as exc:  # report everything, including KeyboardInterrupt/SystemExit
        results.put((rank, "error", f"{type(exc).__name__}: {exc}\n{traceback.format_exc()}"))


def _teardown():
    import torch.distributed as dist

    import sys

    if "megatron.core.parallel_state" in sys.modules:
        sys.modules["megatron.core.parallel_state"].destroy_model_parallel()
    if dist.is_initialized():
        dist.destroy_process_group()


def run_distributed(
    fn: Callable[..., Any],
    world_size: int,
    args: Sequence[Any] = (),
    timeout: float = 600.0,
    env: dict[str, str] | None = None,
    shims: bool = True,
) -> list[Any]:
    """Run ``fn(rank, world_size, *args)`` on ``world_size`` gloo ranks; return results by rank.

    ``shims``: install xlda.cpu_shims (needed for megatron-core) first. ``timeout`` only guards
    against hangs: keep it generous, shared CI machines can be many times slower than usual.
    """
    ctx = mp.get_context("spawn")
    results = ctx.Queue()
    port = free_port()
    child_env = {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    child_env.update(env or {})
    procs = [
        ctx.Process(
            target=_worker, args=(r, world_size, port, fn, tuple(args), child_env, results, shims),
            daemon=False,
        )
        for r in range(world_size)
    ]
    for p in procs:
        p.start()
    collected: dict[int, tuple[str, Any]] = {}
    deadline = time.monotonic() + timeout
    try:
        while len(collected) < world_size:
            try:
                rank, status, payload = results.get(timeout=0.5)
                collected[rank] = (status, payload)
                if status == "error":
                    break  # the others are likely blocked in a collective: fail fast
                continue
            except queue.Empty:
                pass
            dead = [
                r for r, p in enumerate(procs)
                if r not in collected and p.exitcode is not None and p.exitcode != 0
            ]
            if dead:
                # Give the queue a moment: a rank may have reported just before dying.
                time.sleep(0.5)
                while not results.empty():
                    rank, status, payload = results.get()
                    collected[rank] = (status, payload)
                if any(r not in collected for r in dead):
                    codes = {r: procs[r].exitcode for r in dead}
                    raise DistributedRunError(
                        f"{fn.__name__}: rank(s) {sorted(codes)} died without a result "
                        f"(exit codes {codes}; a negative code is the killing signal)"
                    )
                if any(collected[r][0] == "error" for r in dead):
                    break
            if time.monotonic() > deadline:
                missing = [r for r in range(world_size) if r not in collected]
                raise DistributedRunError(
                    f"{fn.__name__}: timed out after {timeout:.0f}s waiting for rank(s) "
                    f"{missing} (a collective probably hangs; finished: {sorted(collected)})"
                )
    finally:
        for p in procs:
            p.join(timeout=10 if len(collected) == world_size else 1)
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(timeout=5)
    errors = {r: v for r, (s, v) in collected.items() if s == "error"}
    if errors:
        first = min(errors)
        raise DistributedRunError(
            f"{fn.__name__} failed on rank(s) {sorted(errors)}; rank {first}:\n{errors[first]}"
        )
    return [collected[r][1] for r in range(world_size)]
