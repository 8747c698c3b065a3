"""xlda.slurm.decide on hand-built checkpoint directories (no cluster needed)."""
from __future__ import annotations

import subprocess
import sys

import pytest

from xlda.slurm import Decision, decide, latest_iteration, master_port, run_targets


def _ckpt(tmp_path, iteration, train_iters=100, exit_interval=None):
    d = tmp_path / f"iter_{iteration:07d}"
    d.mkdir(parents=True)
    extra = f"  exit_interval: {exit_interval}\n" if exit_interval is not None else ""
    (d / "run_config.yaml").write_text(f"model: {{}}\ntraining:\n  train_iters: {train_iters}\n{extra}")
    (tmp_path / "latest_checkpointed_iteration.txt").write_text(f"{iteration}\n")
    return tmp_path


def test_latest_and_targets(tmp_path):
    assert latest_iteration(tmp_path) is None
    _ckpt(tmp_path, 40, train_iters=100, exit_interval=60)
    assert latest_iteration(tmp_path) == 40
    assert run_targets(tmp_path, 40) == (100, 60)
    assert run_targets(tmp_path, 7) == (None, None)


def test_latest_garbage_names_the_file(tmp_path):
    (tmp_path / "latest_checkpointed_iteration.txt").write_text("iter_40")
    with pytest.raises(ValueError, match="latest_checkpointed_iteration.txt.*'iter_40'"):
        latest_iteration(tmp_path)


@pytest.mark.parametrize("latest,start,rc,signaled,restarts,action", [
    (100, 40, 0, False, 0, "done"),       # reached train_iters
    (100, 40, 0, True, 0, "done"),        # finished even though a warning came late
    (60, 40, 0, False, 0, "requeue"),     # clean exit short of the goal, progress: preempted
    (40, 40, 0, False, 0, "fail"),        # clean exit without progress: would loop forever
    (60, 40, 1, False, 0, "fail"),        # crash: never requeued by itself
    (60, 40, 1, True, 0, "requeue"),      # warned, then died while stopping: still requeue
    (40, 40, 0, True, 0, "requeue"),      # warned before it could save anything new
    (60, 40, 0, True, 50, "fail"),        # restart limit
    (60, 40, 0, False, 50, "fail"),
])
def test_decide_table(tmp_path, latest, start, rc, signaled, restarts, action):
    _ckpt(tmp_path, latest, train_iters=100)
    d = decide(tmp_path, start, rc, signaled=signaled, restart_count=restarts, max_restarts=50)
    assert d.action == action, d.reason


def test_decide_without_checkpoint(tmp_path):
    assert decide(tmp_path, 0, 0).action == "done"  # nothing says how far to go
    assert decide(tmp_path, 0, 3).action == "fail"
    assert decide(tmp_path, 0, 0, signaled=True).action == "requeue"


def test_decide_exit_interval_is_a_stop(tmp_path):
    _ckpt(tmp_path, 60, train_iters=100, exit_interval=60)
    assert decide(tmp_path, 30, 0) == Decision("done", "stopped at --exit-interval 60")


def test_master_port_matches_dist_env():
    from xlda.training.dist_env import resolve_env

    for job in (0, 1, 49999, 50000, 123456):
        env = {"SLURM_PROCID": "1", "SLURM_NTASKS": "2", "SLURM_JOB_ID": str(job),
               "SLURM_JOB_NODELIST": "node[003-004]"}
        assert resolve_env(env).master_port == master_port(job)
    assert master_port(123456) == 10000 + 123456 % 50000 == 33456


def test_cli(tmp_path):
    _ckpt(tmp_path, 60, train_iters=100)
    out = subprocess.run([sys.executable, "-m", "xlda.slurm", "decide", "--save", str(tmp_path),
                          "--start-iteration", "40", "--exit-code", "0"],
                         capture_output=True, text=True, check=True).stdout
    assert out == ("requeue\tcheckpoint at iteration 60 < train_iters 100 after a clean exit: "
                   "preempted\n")
    out = subprocess.run([sys.executable, "-m", "xlda.slurm", "latest", "--save",
                          str(tmp_path / "none")], capture_output=True, text=True, check=True)
    assert out.stdout == "0\n"
