"""Real trainer runs in subprocesses (``pretrain_trillion.py`` on mock data, a tiny model), for
fault injection with real signals: start, wait for a log line, signal, read the outcome."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

TINY = ["--config", "examples/trillion7b/tiny.yaml", "--mock-data", "--seq-length", "64",
        "--hidden-size", "64", "--ffn-hidden-size", "128", "--micro-batch-size", "2",
        "--global-batch-size", "2", "--lr-warmup-iters", "1", "--lr-wsd-decay-iters", "1",
        "--eval-interval", "1000", "--eval-iters", "0", "--log-interval", "1"]


def _env() -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    return env


def start(*args: str, log: Path) -> subprocess.Popen:
    """The trainer with the tiny settings plus ``args``; stdout+stderr go to ``log``."""
    f = open(log, "w")
    return subprocess.Popen([sys.executable, "pretrain_trillion.py", *TINY, *args], cwd=REPO,
                            env=_env(), stdout=f, stderr=subprocess.STDOUT)


def run(*args: str, log: Path, timeout: float = 180) -> tuple[int, str]:
    p = start(*args, log=log)
    try:
        rc = p.wait(timeout)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    return rc, log.read_text()


def wait_for(p: subprocess.Popen, log: Path, text: str, timeout: float = 120) -> str:
    """Poll ``log`` until ``text`` appears (the process must still be running)."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        out = log.read_text()
        if text in out:
            return out
        if p.poll() is not None:
            raise AssertionError(f"trainer exited ({p.returncode}) before {text!r}:\n{out[-3000:]}")
        time.sleep(0.05)
    p.kill()
    raise AssertionError(f"{text!r} not logged within {timeout}s:\n{log.read_text()[-3000:]}")
