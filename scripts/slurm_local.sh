#!/usr/bin/env bash
# A real one-node SLURM cluster on this machine, for tests and laptops:
#   scripts/slurm_local.sh start [DIR]   write DIR/slurm.conf, start munged + slurmctld + slurmd,
#                                        wait until the node is idle, print `export SLURM_CONF=...`
#   scripts/slurm_local.sh stop [DIR]    cancel its jobs, stop the daemons by their recorded PIDs
#   scripts/slurm_local.sh status [DIR]  exit 0 iff the daemons run and sinfo answers
#   scripts/slurm_local.sh env [DIR]     print the exports clients need
# DIR defaults to $XLDA_SLURM_DIR or /tmp/xlda-slurm-$UID. Everything (config, munge key and
# socket, state, spool, logs, PIDs) lives in DIR, so several clusters can coexist with a system
# one; ports are picked free at first start (or $XLDA_SLURM_CTLD_PORT / $XLDA_SLURM_SLURMD_PORT).
# Needs root (slurmd launches the job processes). Binaries: scripts/ci_system_deps.sh.
set -euo pipefail

cmd=${1:-}
DIR=${2:-${XLDA_SLURM_DIR:-/tmp/xlda-slurm-$(id -u)}}
CONF=$DIR/slurm.conf
SOCK=$DIR/munge/munge.socket
WAIT_S=${XLDA_SLURM_WAIT_S:-60}

log() { echo "[slurm_local] $*" >&2; }
die() { log "error: $*"; exit 1; }

client_env() { echo "export SLURM_CONF=$CONF"; }

alive() { [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'
}

write_conf() {
  local ctld_port slurmd_port cpus mem hw user
  ctld_port=${XLDA_SLURM_CTLD_PORT:-$(free_port)}
  slurmd_port=${XLDA_SLURM_SLURMD_PORT:-$(free_port)}
  while [ "$slurmd_port" = "$ctld_port" ]; do slurmd_port=$(free_port); done
  # The real hardware as slurmd sees it: a node configured above it would be drained.
  hw=$(slurmd -C | head -1)
  cpus=$(sed -n 's/.*CPUs=\([0-9]*\).*/\1/p' <<<"$hw")
  mem=$(sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p' <<<"$hw")
  mem=$(( mem * 95 / 100 ))  # headroom: free memory jitters, and a node below its config drains
  user=$(id -un)
  cat >"$CONF" <<CONF
# Written by scripts/slurm_local.sh: a one-node test cluster living entirely in $DIR.
ClusterName=xlda
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCK
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/slurmctld.pid
SlurmdPidFile=$DIR/slurmd.pid
SlurmctldLogFile=$DIR/slurmctld.log
SlurmdLogFile=$DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups in containers/VMs without delegation: track by process tree, no task binding.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# No slurmdbd, so sacct has nothing: completed jobs stay in \`scontrol show job\` for
# MinJobAge seconds and every completion (requeues included) is appended to jobcomp.txt.
JobCompType=jobcomp/filetxt
JobCompLoc=$DIR/jobcomp.txt
MinJobAge=600
MpiDefault=none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
JobRequeue=1
# Short timeouts: a test cluster should notice dead steps and come back quickly.
KillWait=10
SlurmdTimeout=60
InactiveLimit=0
# Generous RPC/launch timeouts: test machines are often oversubscribed (load >> cores).
MessageTimeout=60
BatchStartTimeout=120
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=NO
CONF
}

start_munge() {
  alive "$DIR/munge/munged.pid" && return 0
  mkdir -p "$DIR/munge"
  chmod 0700 "$DIR/munge"
  if [ ! -s "$DIR/munge/munge.key" ]; then
    # A private key: this cluster's daemons and clients are the only ones that use it.
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1 count=1024 status=none
    chmod 0400 "$DIR/munge/munge.key"
  fi
  munged --socket="$SOCK" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/munge/munged.pid" --log-file="$DIR/munge/munged.log" \
    --seed-file="$DIR/munge/munged.seed" --force 9>&- \
    || die "munged failed to start; see $DIR/munge/munged.log"
}

wait_idle() {
  local deadline=$(( SECONDS + WAIT_S )) state=""
  while (( SECONDS < deadline )); do
    state=$(SLURM_CONF=$CONF sinfo -h -n localhost -o %T 2>/dev/null || true)
    case $state in
      idle*|mixed*|allocated*) return 0 ;;
    esac
    sleep 0.5
  done
  log "node not idle after ${WAIT_S}s (state: '${state:-no answer}'). Last log lines:"
  tail -5 "$DIR/slurmctld.log" "$DIR/slurmd.log" >&2 || true
  return 1
}

start() {
  for bin in munged slurmctld slurmd sinfo; do
    command -v $bin >/dev/null || die "$bin not found: run scripts/ci_system_deps.sh (as root)"
  done
  [ "$(id -u)" = 0 ] || die "slurmd must run as root to launch jobs"
  mkdir -p "$DIR/state" "$DIR/spool"
  exec 9>"$DIR/.lock"
  flock -w 120 9 || die "another start/stop holds $DIR/.lock"
  # Daemons get `9>&-`: an inherited lock fd would hold the lock for their whole life.
  if status >/dev/null 2>&1; then
    log "already running in $DIR"
    client_env
    return 0
  fi
  [ -s "$CONF" ] || write_conf
  start_munge
  if ! alive "$DIR/slurmctld.pid"; then
    # -i: ignore state files that a killed earlier instance may have left half-written.
    slurmctld -f "$CONF" -i 9>&- || die "slurmctld failed; see $DIR/slurmctld.log"
  fi
  if ! alive "$DIR/slurmd.pid"; then
    slurmd -f "$CONF" -N localhost 9>&- || die "slurmd failed; see $DIR/slurmd.log"
  fi
  wait_idle || die "cluster in $DIR did not come up"
  log "up: $(SLURM_CONF=$CONF sinfo -h -o '%P %D %T %c cpus %m MB')"
  client_env
}

stop_pid() {  # stop_pid PIDFILE NAME: TERM, wait, then KILL; only the recorded PID
  local f=$1 name=$2 pid i
  alive "$f" || { rm -f "$f"; return 0; }
  pid=$(cat "$f")
  kill -TERM "$pid" 2>/dev/null || true
  for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  if kill -0 "$pid" 2>/dev/null; then
    log "$name ($pid) ignored SIGTERM for 10s: SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$f"
}

stop() {
  [ -d "$DIR" ] || { log "nothing in $DIR"; return 0; }
  exec 9>"$DIR/.lock"
  flock -w 120 9 || die "another start/stop holds $DIR/.lock"
  if alive "$DIR/slurmctld.pid"; then
    # Jobs first, so no slurmstepd outlives its slurmd.
    SLURM_CONF=$CONF scancel --full --quiet --state=PENDING 2>/dev/null || true
    SLURM_CONF=$CONF scancel --full --quiet -u "$(id -un)" 2>/dev/null || true
    for _ in $(seq 40); do
      [ -z "$(SLURM_CONF=$CONF squeue -h -o %i 2>/dev/null)" ] && break
      sleep 0.5
    done
  fi
  stop_pid "$DIR/slurmd.pid" slurmd
  stop_pid "$DIR/slurmctld.pid" slurmctld
  stop_pid "$DIR/munge/munged.pid" munged
  log "stopped ($DIR)"
}

status() {
  alive "$DIR/munge/munged.pid" && alive "$DIR/slurmctld.pid" && alive "$DIR/slurmd.pid" \
    || { echo "not running ($DIR)"; return 1; }
  SLURM_CONF=$CONF sinfo -h -o '%P %D %T' || return 1
}

case $cmd in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) client_env ;;
  *) echo "usage: $0 start|stop|status|env [DIR]" >&2; exit 2 ;;
esac
