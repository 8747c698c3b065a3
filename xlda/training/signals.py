"""Preemption signals (SLURM sends SIGTERM / a configured SIGUSR1 before killing a job).

The handler only records the signal; the training loop polls :meth:`SignalHandler.triggered`
once per iteration, which all-reduces (max) the flag over all ranks so every rank saves and stops
at the same iteration even if the signal reached only some of them.
"""
from __future__ import annotations

import signal
from types import FrameType

import torch
import torch.distributed as dist


class SignalHandler:
    def __init__(self, signals: tuple[int, ...] = (signal.SIGTERM, signal.SIGUSR1)):
        self.signals = tuple(signals)
        self.received: list[int] = []
        self._old: dict[int, object] = {}

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.received.append(signum)

    def install(self) -> "SignalHandler":
        if self._old:
            raise RuntimeError("SignalHandler.install() called twice without release()")
        for sig in self.signals:
            self._old[sig] = signal.signal(sig, self._handle)
        return self

    def release(self) -> None:
        """Put back the handlers that were there before :meth:`install`."""
        for sig, old in self._old.items():
            signal.signal(sig, old)
        self._old = {}

    def local_triggered(self) -> bool:
        return bool(self.received)

    def triggered(self) -> bool:
        """True on every rank once any rank got one of the signals (a collective: call it on
        all ranks at the same point)."""
        flag = self.local_triggered()
        if not (dist.is_available() and dist.is_initialized()):
            return flag
        device = "cuda" if dist.get_backend() == "nccl" else "cpu"
        t = torch.tensor([int(flag)], dtype=torch.int32, device=device)
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
        return bool(t.item())

    def __enter__(self) -> "SignalHandler":
        return self.install()

    def __exit__(self, *exc) -> None:
        self.release()
