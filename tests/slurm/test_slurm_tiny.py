"""The tiny recipe through the production machinery: sbatch examples/trillion7b/tiny_cpu.sbatch
-> launch.sh -> srun -> 2 x pretrain_trillion.py (gloo, CPU, mock data), on a real SLURM."""
from __future__ import annotations

import json
import math
import os
import re
import sys
import time
import uuid
from pathlib import Path

import pytest

from tests.slurm.conftest import REPO

pytestmark = pytest.mark.slurm
SBATCH = REPO / "examples" / "trillion7b" / "tiny_cpu.sbatch"
# Small and quick: the start-up (imports, model build, gloo) dominates on 2 cores.
FAST = ["--eval-iters", "0", "--log-interval", "1", "--seq-length", "128"]


def _submit(cluster, tmp_path: Path, tag: str, *flags: str) -> tuple[int, Path, Path]:
    ckpt, log = tmp_path / "ckpt", tmp_path / "tiny.log"
    job = cluster.sbatch(
        f"--job-name=xlda-{tag}-{uuid.uuid4().hex[:6]}", f"--chdir={tmp_path}",
        f"--output={log}", str(SBATCH), *FAST, *flags,
        extra_env={"CKPT": str(ckpt), "XLDA_REPO": str(REPO), "XLDA_PYTHON": sys.executable,
                   "OMP_NUM_THREADS": "1"})
    return job, ckpt, log


def _metrics(ckpt: Path) -> list[dict]:
    rows = [json.loads(l) for l in (ckpt / "metrics.jsonl").read_text().splitlines() if l.strip()]
    return [r for r in rows if r.get("kind") == "train"]


def test_tiny_cpu_job_trains_and_checkpoints(cluster, tmp_path):
    job, ckpt, log = _submit(cluster, tmp_path, "tiny", "--train-iters", "6",
                             "--save-interval", "3", "--lr-warmup-iters", "1")
    info = cluster.wait_done(job, 300, log)
    text = log.read_text(errors="replace")
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "0", text[-3000:]
    assert "world 2" in text  # both tasks joined one gloo world
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "6"
    for it in (3, 6):
        assert (ckpt / f"iter_{it:07d}" / "run_config.yaml").exists()
        assert list((ckpt / f"iter_{it:07d}").glob("*.distcp"))
    rows = _metrics(ckpt)
    assert [r["iteration"] for r in rows] == list(range(1, 7))
    assert [r["consumed_samples"] for r in rows] == [8 * i for i in range(1, 7)]
    losses = [r["lm loss"] for r in rows]
    assert all(math.isfinite(x) for x in losses)
    # random init over a 1024-token vocab starts near ln(1024) = 6.93 .. 9 and must go down
    assert 6.0 < losses[0] < 10.0
    assert losses[-1] < losses[0] - 0.02, losses  # seeded: deterministic
    assert re.search(r"iter\s+6 \| .*lm loss [0-9.]+", text)
    assert "decision: done" in text


def test_tiny_cpu_preempt_requeue_resume(cluster, tmp_path):
    """scancel --signal=USR1 mid-run -> checkpoint at that iteration -> the job requeues itself
    -> the requeued job resumes from it and finishes; no iteration is lost or repeated."""
    job, ckpt, log = _submit(cluster, tmp_path, "preempt", "--train-iters", "20",
                             "--save-interval", "1000")
    deadline = time.monotonic() + 240
    while time.monotonic() < deadline:
        if log.exists() and re.search(r"^iter\s+3 \|", log.read_text(errors="replace"), re.M):
            break
        time.sleep(0.3)
    else:
        pytest.fail(f"no training progress after 240 s:\n{log.read_text()[-3000:]}")
    cluster.run("scancel", "--signal=USR1", str(job))
    cluster.release_requeued(job, 60, log)
    info = cluster.wait_done(job, 300, log)
    text = log.read_text(errors="replace")
    assert info["JobState"] == "COMPLETED" and info["Restarts"] == "1", (info, text[-3000:], cluster.ctld_log_tail())
    m = re.search(r"signal received: saving at iteration (\d+)", text)
    assert m, text[-3000:]
    stopped = int(m.group(1))
    assert 3 <= stopped < 20
    assert (ckpt / f"iter_{stopped:07d}").is_dir()
    assert re.search(rf"resumed from \S+ at iteration {stopped}\b", text), text[-3000:]
    assert "decision: requeue" in text and "decision: done" in text
    assert (ckpt / "latest_checkpointed_iteration.txt").read_text().strip() == "20"
    rows = _metrics(ckpt)
    assert [r["iteration"] for r in rows] == list(range(1, 21))
    assert [r["consumed_samples"] for r in rows] == [8 * i for i in range(1, 21)]
