"""Fault-injection helpers for tests/fault: a real small tmpfs (where mounting is allowed) and
subprocess runners. A module, not a conftest, so other fault suites can add their own."""
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def small_tmpfs(tmp_path):
    """mount(size) -> a directory on a fresh tmpfs of that size (unmounted afterwards); skips
    where the machine does not allow mounting (the injected-ENOSPC tests still run there)."""
    mounted = []

    def mount(size: str) -> Path:
        d = tmp_path / f"tmpfs{len(mounted)}"
        d.mkdir()
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(d)],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here ({r.stderr.strip() or r.returncode})")
        mounted.append(d)
        return d

    yield mount
    for d in mounted:
        subprocess.run(["umount", "-l", str(d)], check=False)


def spawn(script: str, *args: str, log=None) -> subprocess.Popen:
    """`python -c script args...` from the repository root, this checkout first on the path, in its
    own session (so `kill_group` can sweep up children a kill -9 orphans). Output goes to pipes, or
    to the file `log` where orphans would hold the pipes open."""
    env = dict(os.environ, PYTHONPATH=f"{REPO}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
               OMP_NUM_THREADS="1", PYTHONWARNINGS="ignore")
    out = open(log, "w") if log else subprocess.PIPE
    return subprocess.Popen([sys.executable, "-c", script, *map(str, args)], cwd=REPO, env=env,
                            stdout=out, stderr=subprocess.STDOUT if log else subprocess.PIPE, text=True,
                            start_new_session=True)


def kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, 9)
    except ProcessLookupError:
        pass


def wait_for(predicate, proc: subprocess.Popen, timeout: float = 120.0, what: str = "condition"):
    t0 = time.monotonic()
    while not predicate():
        if proc.poll() is not None:
            err = proc.stderr.read() if proc.stderr else ""
            raise AssertionError(f"process ended (rc {proc.returncode}) before {what}:\n{err[-3000:]}")
        if time.monotonic() - t0 > timeout:
            proc.kill()
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.02)
