"""Stand-in for pretrain_trillion.py that obeys the launcher's side of the contract only.

It lets tests/slurm check launch.sh's machinery (per-task env, signal forwarding, requeue,
resume from --load) in seconds and independently of the real trainer: it counts iterations,
writes checkpoints in the contract's layout (iter_NNNNNNN/run_config.yaml +
latest_checkpointed_iteration.txt), and turns SIGUSR1/SIGTERM into "save now, exit 0".
"""
import argparse
import json
import os
import signal
import sys
import time
from pathlib import Path

p = argparse.ArgumentParser()
p.add_argument("--train-iters", type=int, required=True)
p.add_argument("--save-interval", type=int, default=1000)
p.add_argument("--iter-seconds", type=float, default=0.1)
p.add_argument("--save", required=True)
p.add_argument("--load", required=True)
a = p.parse_args()

rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
env = {k: os.environ[k] for k in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT")}
print(f"rank {rank} env {json.dumps(env, sort_keys=True)}", flush=True)

stop = []
signal.signal(signal.SIGUSR1, lambda s, f: stop.append("SIGUSR1"))
signal.signal(signal.SIGTERM, lambda s, f: stop.append("SIGTERM"))

save = Path(a.save)
latest = Path(a.load) / "latest_checkpointed_iteration.txt"
it = int(latest.read_text()) if latest.exists() else 0
if it:
    print(f"rank {rank} resumed from iteration {it}", flush=True)


def checkpoint(i):
    if rank != 0:
        return
    d = save / f"iter_{i:07d}"
    d.mkdir(parents=True, exist_ok=True)
    (d / "run_config.yaml").write_text(f"training:\n  train_iters: {a.train_iters}\n")
    tmp = save / "latest_checkpointed_iteration.txt.tmp"
    tmp.write_text(str(i))
    tmp.rename(save / "latest_checkpointed_iteration.txt")
    print(f"saved checkpoint at iteration {i}", flush=True)


while it < a.train_iters:
    if stop:
        print(f"rank {rank} got {stop[0]} at iteration {it}: saving and exiting", flush=True)
        checkpoint(it)
        sys.exit(0)
    time.sleep(a.iter_seconds)
    it += 1
    if rank == 0:
        print(f"iteration {it}/{a.train_iters}", flush=True)
    if it % a.save_interval == 0 and it < a.train_iters:
        checkpoint(it)
checkpoint(it)
print(f"rank {rank} finished at iteration {it}", flush=True)
