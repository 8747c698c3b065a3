"""A real SLURM cluster for tests/slurm.

Uses the cluster the environment already talks to when ``sinfo`` answers (``SLURM_CONF`` or the
system config); otherwise starts a private one-node cluster with scripts/slurm_local.sh for the
session and stops it afterwards. Without SLURM binaries the tests skip -- except under CI=true,
where scripts/ci_system_deps.sh should have installed them, so their absence is a failure.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SLURM_LOCAL = REPO / "scripts" / "slurm_local.sh"
BINARIES = ("sbatch", "squeue", "scontrol", "scancel", "sinfo", "srun")


def _in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def _sinfo_ok(env: dict) -> bool:
    try:
        r = subprocess.run(["sinfo", "-h", "-o", "%T"], env=env, capture_output=True, text=True,
                           timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return r.returncode == 0 and any(s.startswith(("idle", "mix", "alloc")) for s in r.stdout.split())


@dataclass
class Cluster:
    """Client side of a running cluster: env for its commands plus job helpers."""

    env: dict
    started_dir: Path | None = None  # set when this session started the cluster
    jobs: list = field(default_factory=list)

    def run(self, *cmd: str, check: bool = True, timeout: float = 30) -> str:
        r = subprocess.run(list(cmd), env=self.env, capture_output=True, text=True, timeout=timeout)
        if check and r.returncode != 0:
            raise AssertionError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()}")
        return r.stdout

    def sbatch(self, *args: str, extra_env: dict | None = None) -> int:
        env = dict(self.env, **(extra_env or {}))
        r = subprocess.run(["sbatch", "--parsable", *args], env=env, capture_output=True,
                           text=True, timeout=30)
        if r.returncode != 0:
            raise AssertionError(f"sbatch {' '.join(args)} failed: {r.stderr.strip()}")
        job = int(r.stdout.strip().split(";")[0])
        self.jobs.append(job)
        return job

    def job(self, job_id: int) -> dict:
        """`scontrol show job` as a dict (completed jobs stay visible for MinJobAge)."""
        out = self.run("scontrol", "show", "-o", "job", str(job_id), check=False)
        return dict(re.findall(r"(\w+)=(\S*)", out))

    def wait(self, job_id: int, until, timeout: float, what: str, poll: float = 0.5,
             log: Path | None = None) -> dict:
        """Poll until ``until(job_dict)``; on timeout fail with the job state and log tail."""
        deadline = time.monotonic() + timeout
        info: dict = {}
        while time.monotonic() < deadline:
            info = self.job(job_id)
            if info and until(info):
                return info
            time.sleep(poll)
        tail = ""
        if log is not None and log.exists():
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-30:])
        ctld = "\nslurmctld.log tail:\n" + self.ctld_log_tail()
        raise AssertionError(f"job {job_id}: not {what} after {timeout:.0f}s; state "
                             f"{info.get('JobState')} reason {info.get('Reason')}\nlog tail:\n{tail}"
                             + ctld)

    def ctld_log_tail(self, n: int = 20) -> str:
        if self.started_dir is None or not (self.started_dir / "slurmctld.log").exists():
            return ""
        lines = (self.started_dir / "slurmctld.log").read_text(errors="replace").splitlines()
        return "\n".join(lines[-n:])

    def wait_done(self, job_id: int, timeout: float, log: Path | None = None) -> dict:
        final = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "NODE_FAIL", "OUT_OF_MEMORY")
        return self.wait(job_id, lambda j: j.get("JobState") in final, timeout, "finished",
                         log=log)

    def release_requeued(self, job_id: int, timeout: float, log: Path | None = None) -> dict:
        """Wait for a requeue, then lift SLURM's fixed ~120 s begin-time delay of requeued jobs."""
        info = self.wait(job_id, lambda j: int(j.get("Restarts", 0)) >= 1
                         and j.get("JobState") == "PENDING", timeout, "requeued", log=log)
        # The delay exists so that nothing of the old run is left when the job (same id) starts
        # again: a new launch racing the old step's clean-up of its spool dir (job00042/) fails
        # the job. Here `scontrol listpids` (status 1 once none) and the spool dir tell.
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            r = subprocess.run(["scontrol", "listpids", str(job_id)], env=self.env,
                               capture_output=True, text=True, timeout=30)
            spool_busy = self.started_dir is not None and any(
                (self.started_dir / "spool").glob(f"*{job_id:05d}*"))
            if (r.returncode != 0 or len(r.stdout.strip().splitlines()) <= 1) and not spool_busy:
                break
            time.sleep(0.5)
        time.sleep(1.0)  # slurmd's own bookkeeping of the ended step
        self.run("scontrol", "update", f"JobId={job_id}", "StartTime=now")
        return info


@pytest.fixture(scope="session")
def slurm_cluster():
    missing = [b for b in BINARIES if shutil.which(b) is None]
    if missing:
        msg = (f"SLURM binaries missing: {', '.join(missing)} (install: bash "
               "scripts/ci_system_deps.sh as root)")
        if _in_ci():
            pytest.fail(msg + " -- under CI=true this is an error, not a skip")
        pytest.skip(msg)
    env = dict(os.environ)
    if _sinfo_ok(env):
        yield Cluster(env=env)
        return
    for b in ("munged", "slurmctld", "slurmd"):
        if shutil.which(b) is None:
            msg = f"no running cluster and no {b} to start one (scripts/ci_system_deps.sh)"
            if _in_ci():
                pytest.fail(msg)
            pytest.skip(msg)
    if os.geteuid() != 0 and not _in_ci():
        pytest.skip("no running SLURM cluster, and starting one needs root (slurmd)")
    run_dir = Path(tempfile.mkdtemp(prefix="xlda-slurm-"))
    r = subprocess.run(["bash", str(SLURM_LOCAL), "start", str(run_dir)], capture_output=True,
                       text=True, timeout=120)
    if r.returncode != 0:
        pytest.fail(f"scripts/slurm_local.sh start failed:\n{r.stderr[-3000:]}")
    env["SLURM_CONF"] = str(run_dir / "slurm.conf")
    cluster = Cluster(env=env, started_dir=run_dir)
    try:
        yield cluster
    finally:
        subprocess.run(["bash", str(SLURM_LOCAL), "stop", str(run_dir)], capture_output=True,
                       timeout=120)
        shutil.rmtree(run_dir, ignore_errors=True)


@pytest.fixture
def cluster(slurm_cluster):
    """Per test: cancels whatever jobs the test submitted and left running."""
    slurm_cluster.jobs = []
    yield slurm_cluster
    for job in slurm_cluster.jobs:
        slurm_cluster.run("scancel", "--full", str(job), check=False)
