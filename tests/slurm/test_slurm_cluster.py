"""The cluster itself and launch.sh's machinery, on a real one-node SLURM (stand-in trainer)."""
from __future__ import annotations

import json
import re
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.slurm.conftest import REPO

pytestmark = pytest.mark.slurm
FAKE = Path(__file__).with_name("fake_trainer.py")
LAUNCH = REPO / "examples" / "trillion7b" / "launch.sh"


def _name(tag: str) -> str:
    return f"xlda-{tag}-{uuid.uuid4().hex[:6]}"


def _wait_for_text(path: Path, pattern: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            text = path.read_text(errors="replace")
            if re.search(pattern, text):
                return text
        time.sleep(0.2)
    raise AssertionError(f"{pattern!r} not in {path} after {timeout}s:\n"
                         f"{path.read_text(errors='replace') if path.exists() else '(no file)'}")


def test_two_task_job_signal_and_requeue(cluster, tmp_path):
    """2 tasks run; scancel --signal=USR1 reaches both task processes; scontrol requeue re-runs."""
    task = tmp_path / "task.py"
    # Python task processes, as the trainer's; each prints its line once its handler is set.
    task.write_text("""import os, signal, sys, time
rank = os.environ["SLURM_PROCID"]
def handler(signum, frame):
    print(f"got USR1 task {rank}", flush=True)
    sys.exit(0)
signal.signal(signal.SIGUSR1, handler)
print(f"task {rank}/{os.environ['SLURM_NTASKS']} local {os.environ['SLURM_LOCALID']}", flush=True)
if os.environ.get("SLURM_RESTART_COUNT", "0") == "0":
    time.sleep(60)
""")
    script = tmp_path / "job.sh"
    script.write_text(f"""#!/bin/bash
#SBATCH --ntasks=2
#SBATCH --requeue
#SBATCH --open-mode=append
echo "start restart=${{SLURM_RESTART_COUNT:-0}}"
srun --input=none {sys.executable} {task}
echo "step done restart=${{SLURM_RESTART_COUNT:-0}}"
if [ "${{SLURM_RESTART_COUNT:-0}}" = 0 ]; then scontrol requeue $SLURM_JOB_ID; fi
""")
    log = tmp_path / "job.log"
    job = cluster.sbatch(f"--job-name={_name('sig')}", f"--chdir={tmp_path}", f"--output={log}",
                         str(script))
    _wait_for_text(log, r"task 0/2[\s\S]*task 1/2|task 1/2[\s\S]*task 0/2", 30)
    cluster.run("scancel", "--signal=USR1", str(job))
    cluster.release_requeued(job, 30, log)
    info = cluster.wait_done(job, 30, log)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED", text
    assert "got USR1 task 0" in text and "got USR1 task 1" in text
    assert "start restart=0" in text and "start restart=1" in text
    assert "step done restart=1" in text
    assert info["Restarts"] == "1"


def _launch_job(cluster, tmp_path, tag, train_iters, extra_sbatch=()):
    ckpt = tmp_path / "ckpt"
    log = tmp_path / "launch.log"
    script = tmp_path / "job.sbatch"
    script.write_text(f"""#!/bin/bash
#SBATCH --ntasks=2
#SBATCH --requeue
#SBATCH --open-mode=append
#SBATCH --signal=B:USR1@1
export CKPT={ckpt} XLDA_TRAINER={FAKE} XLDA_PYTHON={sys.executable}
exec bash {LAUNCH} --train-iters {train_iters} --save-interval 10 --iter-seconds 0.1
""")
    job = cluster.sbatch(f"--job-name={_name(tag)}", f"--chdir={tmp_path}", f"--output={log}",
                         *extra_sbatch, str(script))
    return job, ckpt, log


def test_launch_finishes_without_requeue(cluster, tmp_path):
    job, ckpt, log = _launch_job(cluster, tmp_path, "fin", 5)
    info = cluster.wait_done(job, 60, log)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "0", text
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text() == "5"
    envs = sorted((json.loads(m) for m in re.findall(r"rank \d env (\{.*\})", text)),
                  key=lambda e: e["RANK"])
    port = str(10000 + job % 50000)
    assert [(e["RANK"], e["WORLD_SIZE"], e["LOCAL_RANK"]) for e in envs] == [
        ("0", "2", "0"), ("1", "2", "1")]
    assert {(e["MASTER_ADDR"], e["MASTER_PORT"]) for e in envs} == {("localhost", port)}
    assert "decision: done" in text


@pytest.mark.parametrize("batch_only", [False, True], ids=["step-signal", "batch-trap"])
def test_launch_preempt_requeue_resume(cluster, tmp_path, batch_only):
    """USR1 to the steps (scancel --signal) or to the batch shell only (-b, what
    --signal=B:USR1@N does): checkpoint, self-requeue, resume from it, finish."""
    job, ckpt, log = _launch_job(cluster, tmp_path, "pre", 60)
    _wait_for_text(log, r"iteration 1[2-9]/60", 40)
    cluster.run("scancel", "--signal=USR1", *(["--batch"] if batch_only else []), str(job))
    cluster.release_requeued(job, 30, log)
    info = cluster.wait_done(job, 60, log)
    text = log.read_text()
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", text
    m = re.search(r"rank 0 got SIGUSR1 at iteration (\d+)", text)  # rank 0 saves
    assert m, text
    stopped = int(m.group(1))
    assert 12 <= stopped < 60
    assert f"rank 0 resumed from iteration {stopped}" in text
    assert f"rank 1 resumed from iteration {stopped}" in text
    assert "decision: requeue" in text
    if batch_only:
        assert "SIGUSR1 (preemption warning): forwarding" in text
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text() == "60"
