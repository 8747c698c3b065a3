#!/usr/bin/env bash
# System packages the test suite needs beyond pip: a real one-node SLURM cluster (slurm-wlm +
# munge) for tests/slurm. Idempotent and quiet; a no-op when the binaries are already there.
# Needs root (or passwordless sudo) on Debian/Ubuntu; elsewhere it says what to install.
set -euo pipefail

need=()
for bin in sinfo sbatch srun slurmctld slurmd; do
  command -v "$bin" >/dev/null 2>&1 || { need+=(slurm-wlm); break; }
done
command -v munged >/dev/null 2>&1 || need+=(munge)
[ ${#need[@]} -eq 0 ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
  echo "[ci_system_deps] missing ${need[*]} and no apt-get here: install SLURM (slurmctld," \
       "slurmd, srun, sbatch) and munge with your package manager" >&2
  exit 1
fi
SUDO=""
if [ "$(id -u)" != 0 ]; then
  command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null || {
    echo "[ci_system_deps] need root to apt-get install ${need[*]}" >&2; exit 1; }
  SUDO="sudo -n"
fi
echo "[ci_system_deps] installing ${need[*]} ..."
export DEBIAN_FRONTEND=noninteractive
# An apt cache from the image may be stale or empty: update once, then install without extras.
$SUDO apt-get update -qq >/dev/null
# policy-rc.d 101 stops the packages' postinst from starting system services: the tests run
# their own daemons with their own config (scripts/slurm_local.sh).
created_policy=0
if [ ! -e /usr/sbin/policy-rc.d ]; then
  printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
  $SUDO chmod +x /usr/sbin/policy-rc.d
  created_policy=1
fi
rc=0
$SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/tmp/ci_system_deps.apt.log 2>&1 || rc=$?
[ $created_policy = 1 ] && $SUDO rm -f /usr/sbin/policy-rc.d
if [ $rc != 0 ]; then
  tail -20 /tmp/ci_system_deps.apt.log >&2
  echo "[ci_system_deps] apt-get install ${need[*]} failed (log: /tmp/ci_system_deps.apt.log)" >&2
  exit $rc
fi
echo "[ci_system_deps] installed: $(sinfo --version 2>/dev/null || echo '?'), munge $(munged --version 2>&1 | head -1)"
