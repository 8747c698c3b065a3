"""Item 13: publishing a checkpoint (rename into place, swap on a re-save, "latest") under a real
SIGKILL at every step: afterwards "latest" always names a complete directory."""
from __future__ import annotations

import os
import shutil
import signal
from pathlib import Path

import pytest

from xlda.training import checkpoint_publish as pub
from xlda import checkpoint_layout
from xlda.training import checkpointing as ck


def _fake(d: Path, content: str) -> None:
    d.mkdir()
    (d / "data").write_text(content)
    (d / "checksums.json").write_text("{}")  # what marks a save complete


def _setup(save: Path, resave: bool) -> tuple[Path, Path, int]:
    if save.exists():
        shutil.rmtree(save)
    save.mkdir()
    _fake(ck.iter_dir(save, 1), "one")
    _fake(ck.iter_dir(save, 2), "old two")
    checkpoint_layout.write_latest(save, 2)
    it = 2 if resave else 3
    target = save / f".iter_{it:07d}.partial"
    _fake(target, "new")
    return target, ck.iter_dir(save, it), it


def _publish_killed_at(save: Path, resave: bool, n: int, exchange: bool) -> bool:
    """Run _publish in a forked child that SIGKILLs itself before its n-th file-system call.
    True if the child was killed (False: it finished before reaching call n)."""
    target, final, it = _setup(save, resave)
    pid = os.fork()
    if pid == 0:  # child: count and kill; never return into pytest
        try:
            calls = [0]

            def gate(fn):
                def wrapped(*a, **k):
                    if calls[0] == n:
                        os.kill(os.getpid(), signal.SIGKILL)
                    calls[0] += 1
                    return fn(*a, **k)
                return wrapped

            os.replace = gate(os.replace)
            os.fsync = gate(os.fsync)
            shutil.rmtree = gate(shutil.rmtree)
            pub.exchange = gate(pub.exchange if exchange else (lambda a, b: False))
            pub.publish(save, target, final, it)
            os._exit(0)
        except BaseException:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert not (os.WIFEXITED(status) and os.WEXITSTATUS(status) == 3)
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


def _check_latest(save: Path, resave: bool) -> str:
    latest = ck.read_latest(save)
    d = ck.iter_dir(save, latest)
    assert d.is_dir() and (d / "checksums.json").exists(), (latest, sorted(os.listdir(save)))
    return f"{latest}:{(d / 'data').read_text()}"


@pytest.mark.parametrize("resave", [False, True], ids=["new-iteration", "re-save"])
@pytest.mark.parametrize("exchange", [True, False], ids=["renameat2", "fallback"])
def test_kill9_at_every_step_of_publishing_keeps_latest_valid(tmp_path, resave, exchange):
    probe_a, probe_b = tmp_path / "a", tmp_path / "b"
    probe_a.mkdir(), probe_b.mkdir()
    if exchange and not pub.exchange(probe_a, probe_b):
        pytest.skip("this file system has no renameat2(RENAME_EXCHANGE)")
    save = tmp_path / "ckpt"
    seen = set()
    for n in range(50):
        killed = _publish_killed_at(save, resave, n, exchange)
        seen.add(_check_latest(save, resave))
        if not killed:
            break
    assert n > 2  # it really was killed inside the sequence
    final = f"{2 if resave else 3}:new"
    assert _check_latest(save, resave) == final  # a full run publishes the new copy
    # every state a kill can leave: the old latest, or the new one (fallback: iteration 1 too)
    assert seen <= {"2:old two", final, "1:one"}
