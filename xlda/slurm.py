"""What examples/trillion7b/launch.sh asks after the training step ends: requeue, done, or fail.

The SLURM -> RANK/WORLD_SIZE mapping lives in ``xlda.training.dist_env``; this module only reads
the checkpoint directory (contract: ``<save>/latest_checkpointed_iteration.txt`` and
``<save>/iter_NNNNNNN/run_config.yaml``) to decide whether a job that stopped should run again.

A preemption reaches the trainer in one of two ways, and both must requeue:
- ``#SBATCH --signal=B:USR1@120`` signals the batch shell; launch.sh traps it, forwards it to the
  step and passes ``--signaled 1`` here;
- ``scancel --signal=USR1 <job>`` (no ``--full``) signals only the step's tasks: the batch shell
  never hears of it. The trainer saves and exits; the checkpoint then shows an iteration short of
  ``train_iters`` that advanced during this run, which is what "preempted" looks like from outside.

CLI: ``python -m xlda.slurm decide --save DIR --start-iteration N --exit-code RC [--signaled 1]
[--restart-count K] [--max-restarts M]`` prints ``requeue|done|fail<TAB>reason``.
"""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from xlda.checkpoint_layout import RUN_CONFIG_FILE, iter_dir, read_latest


def latest_iteration(save_dir: str | Path) -> Optional[int]:
    """The iteration ``latest_checkpointed_iteration.txt`` points at; None if there is none yet."""
    return read_latest(save_dir, error=ValueError)


def run_targets(save_dir: str | Path, iteration: int) -> tuple[Optional[int], Optional[int]]:
    """(train_iters, exit_interval) from the resolved config saved with checkpoint ``iteration``."""
    import yaml

    f = iter_dir(save_dir, iteration) / RUN_CONFIG_FILE
    if not f.exists():
        return None, None
    cfg = yaml.safe_load(f.read_text()) or {}
    training = cfg.get("training") or {}
    return training.get("train_iters"), training.get("exit_interval")


@dataclass
class Decision:
    action: str  # requeue | done | fail
    reason: str


def decide(save_dir: str | Path, start_iteration: int, exit_code: int, signaled: bool = False,
           restart_count: int = 0, max_restarts: int = 50) -> Decision:
    """Whether a stopped training job should be requeued (see the module docstring)."""
    latest = latest_iteration(save_dir)
    train_iters, exit_interval = run_targets(save_dir, latest) if latest is not None else (None, None)
    if train_iters is not None and latest is not None and latest >= train_iters:
        return Decision("done", f"checkpoint at iteration {latest} >= train_iters {train_iters}")
    progressed = latest is not None and latest > start_iteration
    if restart_count >= max_restarts:
        return Decision("fail", f"restart count {restart_count} reached the limit {max_restarts}")
    if signaled:
        # A preemption warning: requeue even without progress (the signal may have come before
        # the first checkpoint); the restart limit stops an endless loop.
        return Decision("requeue", f"preempted by signal; resume from iteration {latest or 0}")
    if exit_code != 0:
        return Decision("fail", f"trainer exited with code {exit_code}; not requeued (fix and "
                                "resubmit: the job resumes from the latest checkpoint)")
    if exit_interval is not None and latest is not None and latest >= exit_interval:
        return Decision("done", f"stopped at --exit-interval {exit_interval}")
    if train_iters is None:
        return Decision("done", "trainer exited 0 and no run_config.yaml says how far to go")
    if progressed:
        return Decision("requeue", f"checkpoint at iteration {latest} < train_iters "
                                   f"{train_iters} after a clean exit: preempted")
    return Decision("fail", f"trainer exited 0 at iteration {latest or 0} < train_iters "
                            f"{train_iters} without progress; not requeued")


def master_port(job_id: int) -> int:
    """The rendezvous port of a job: the formula of ``xlda.training.dist_env`` (same on all tasks)."""
    return 10000 + int(job_id) % 50000


def main(argv=None) -> int:
    from xlda.cli.flags import FlagParser

    p = FlagParser(prog="xlda.slurm")
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("decide", help="requeue, done or fail after the training step ended")
    d.add_argument("--save", required=True, help="the run's checkpoint directory")
    d.add_argument("--start-iteration", type=int, required=True,
                   help="latest checkpointed iteration before the step ran")
    d.add_argument("--exit-code", type=int, required=True, help="the training step's exit code")
    d.add_argument("--signaled", type=int, default=0, help="1: the job was signalled (preempted)")
    d.add_argument("--restart-count", type=int, default=0, help="SLURM_RESTART_COUNT")
    d.add_argument("--max-restarts", type=int, default=50,
                   help="restart count at which it fails instead of requeueing")
    lt = sub.add_parser("latest", help="print the latest checkpointed iteration (0 if none)")
    lt.add_argument("--save", required=True, help="the run's checkpoint directory")
    mp = sub.add_parser("master-port", help="rendezvous port of a job id")
    mp.add_argument("job_id", type=int)
    a = p.parse_args(argv)
    if a.cmd == "decide":
        dec = decide(a.save, a.start_iteration, a.exit_code, bool(a.signaled), a.restart_count,
                     a.max_restarts)
        print(f"{dec.action}\t{dec.reason}")
    elif a.cmd == "latest":
        print(latest_iteration(a.save) or 0)
    else:
        print(master_port(a.job_id))
    return 0


if __name__ == "__main__":
    sys.exit(main())
