#!/usr/bin/env bash
# The shared srun launcher of every examples/trillion7b/*.sbatch (run it with `exec`, so that it
# IS the batch shell and receives `--signal=B:USR1@...`):
#   CKPT=/ckpt/run1 exec bash examples/trillion7b/launch.sh --config examples/trillion7b/tiny.yaml [flags]
# Starts one trainer per SLURM task, always with --save $CKPT --load $CKPT: a fresh job starts
# from scratch, a requeued one resumes from $CKPT/latest_checkpointed_iteration.txt.
#
# Preemption, two paths, both end in `scontrol requeue` + resume:
#  1. `#SBATCH --signal=B:USR1@120` warns the batch shell (this script) 120 s before the time
#     limit. Bash runs a trap only between commands, so srun runs in the background and we
#     `wait`; the trap forwards USR1 to the step's tasks with `scancel --signal=USR1 $JOBID` (all
#     steps, not the batch shell) -- the python ranks save a checkpoint and exit cleanly.
#  2. `scancel --signal=USR1 <job>` from outside reaches only the tasks. The trainer saves and
#     exits 0 short of --train-iters; `python -m xlda.slurm decide` sees a checkpoint that
#     advanced but is not final and requeues.
# SIGTERM (scancel, hard time limit, SLURM preemption) goes to every process of the job at once;
# the trainer checkpoints within KillWait, and we do not requeue ourselves (a user's scancel
# must stick; SLURM's PreemptMode=REQUEUE requeues preempted jobs by itself).
# A requeued job is eligible again ~120 s later (SLURM's fixed delay); `scontrol update
# JobId=<id> StartTime=now` releases it at once.
set -uo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
PY=${XLDA_PYTHON:-python3}
# The trainer script; tests point it at a stand-in to check this machinery on its own.
TRAINER=${XLDA_TRAINER:-$REPO/pretrain_trillion.py}
MAX_RESTARTS=${XLDA_MAX_RESTARTS:-50}
: "${CKPT:?set CKPT to the checkpoint directory (used for both --save and --load)}"
: "${SLURM_JOB_ID:?launch.sh runs inside a SLURM allocation (sbatch/salloc)}"

log() { echo "[launch $(date +%H:%M:%S)] $*"; }

export PYTHONPATH="$REPO${PYTHONPATH:+:$PYTHONPATH}"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
# One rendezvous for all tasks: the first node of the allocation, a port from the job id (the
# formula of xlda.training.dist_env, so a bare srun of the trainer agrees with this script).
MASTER_ADDR=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -1)
MASTER_PORT=$(( 10000 + SLURM_JOB_ID % 50000 ))
export MASTER_ADDR MASTER_PORT

mkdir -p "$CKPT"
start_iter=$("$PY" -m xlda.slurm latest --save "$CKPT") || exit 1
restarts=${SLURM_RESTART_COUNT:-0}
log "job $SLURM_JOB_ID restart $restarts: ${SLURM_NTASKS:-1} tasks on $SLURM_JOB_NODELIST," \
    "rendezvous $MASTER_ADDR:$MASTER_PORT, checkpoint dir $CKPT (latest iteration $start_iter)"

signaled=0
terminated=0
step_pid=""
on_usr1() {
  signaled=1
  log "SIGUSR1 (preemption warning): forwarding to the training step"
  scancel --signal=USR1 "$SLURM_JOB_ID" || log "scancel --signal failed"
}
on_term() {
  terminated=1
  log "SIGTERM: the job is being ended by SLURM; the trainer checkpoints, no self-requeue"
}
trap on_usr1 USR1
trap on_term TERM

# Per-task env from SLURM_* inside the task: RANK/WORLD_SIZE/LOCAL_RANK differ per task, so they
# cannot be exported here. `exec` makes python the task process, so step signals reach it.
srun --kill-on-bad-exit=1 --input=none bash -c '
  export RANK=$SLURM_PROCID WORLD_SIZE=$SLURM_NTASKS LOCAL_RANK=$SLURM_LOCALID
  exec "$@"' xlda-task \
  "$PY" "$TRAINER" "$@" --save "$CKPT" --load "$CKPT" &
step_pid=$!
# `wait` returns early (status > 128) whenever a trapped signal arrives: wait again until srun
# itself has ended.
while :; do
  wait "$step_pid"
  rc=$?
  kill -0 "$step_pid" 2>/dev/null || break
done
log "training step ended with exit code $rc"

if [ "$terminated" = 1 ]; then
  exit "$rc"
fi
decision=$("$PY" -m xlda.slurm decide --save "$CKPT" --start-iteration "$start_iter" \
  --exit-code "$rc" --signaled "$signaled" --restart-count "$restarts" \
  --max-restarts "$MAX_RESTARTS") || { log "cannot decide about requeue"; exit 1; }
action=${decision%%$'\t'*}
log "decision: $action (${decision#*$'\t'})"
case $action in
  requeue)
    # Queues the job again (same id, same script); return at once so this batch step ends
    # promptly and no old process of the job is left when the requeued one starts.
    scontrol requeue "$SLURM_JOB_ID" || { log "scontrol requeue failed"; exit 1; }
    exit 0 ;;
  done) exit 0 ;;
  *) exit "$(( rc == 0 ? 1 : rc ))" ;;
esac
