"""SignalHandler: records SIGTERM/SIGUSR1, all-reduces the flag so every rank stops together,
and puts the previous handlers back on release()."""
from __future__ import annotations

import os
import signal

import pytest

from xlda.testing.distributed import run_distributed
from xlda.training.signals import SignalHandler


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGUSR1])
def test_records_signal_without_dying_and_restores_handler(sig):
    seen = []
    old = signal.signal(sig, lambda s, f: seen.append(s))
    try:
        h = SignalHandler().install()
        assert not h.triggered()
        os.kill(os.getpid(), sig)
        assert h.triggered() and h.received == [sig]
        assert seen == []  # ours replaced the previous handler while installed
        h.release()
        os.kill(os.getpid(), sig)
        assert seen == [sig]  # the previous handler is back
    finally:
        signal.signal(sig, old)


def test_only_listed_signals_and_double_install():
    old = signal.getsignal(signal.SIGUSR2)
    with SignalHandler(signals=(signal.SIGUSR1,)) as h:
        assert signal.getsignal(signal.SIGUSR2) is old
        with pytest.raises(RuntimeError, match="twice"):
            h.install()
    assert signal.getsignal(signal.SIGUSR1) is signal.SIG_DFL or callable(
        signal.getsignal(signal.SIGUSR1))


def _two_rank_job(rank, world):
    h = SignalHandler().install()
    flags = [h.triggered()]
    if rank == 1:
        os.kill(os.getpid(), signal.SIGTERM)
    flags.append(h.triggered())
    h.release()
    return {"flags": flags, "local": h.local_triggered()}


def test_one_rank_signalled_all_ranks_stop():
    r0, r1 = run_distributed(_two_rank_job, 2, shims=False)
    assert r0 == {"flags": [False, True], "local": False}
    assert r1 == {"flags": [False, True], "local": True}
