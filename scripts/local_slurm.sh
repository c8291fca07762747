#!/usr/bin/env bash
# A real one-node Slurm cluster on this machine, for the project's tests (Debian, run as root).
#
#   bash scripts/local_slurm.sh start [STATE_DIR]   # default STATE_DIR: /tmp/diffusion-operators-slurm
#       Installs slurmctld/slurmd/slurm-client/munge with apt-get if missing (exit 3, with a one-line
#       reason on stderr, if it cannot), writes STATE_DIR/slurm.conf and gres.conf, starts munged
#       (unless one runs), slurmctld and slurmd, waits until the node is idle (exit 1 and the logs'
#       tails if it is not within 60 s), then prints `export SLURM_CONF=STATE_DIR/slurm.conf` on
#       stdout, for `eval`. If the cluster is already up it only prints that line.
#   bash scripts/local_slurm.sh stop [STATE_DIR]
#       Cancels all jobs, waits (at most 30 s) for the queue to empty, then stops slurmd, slurmctld
#       and the munged that `start` started, by the pids in STATE_DIR. Safe when nothing runs.
#
# The node, named `hostname -s`, declares CPUs=4, RealMemory=8000 and gpu:2 whatever the machine
# has: SlurmdParameters=config_overrides lets slurmd trust slurm.conf over the hardware, and the
# two "GPUs" are character devices (mknod c 1 3, like /dev/null) in STATE_DIR/dev, as gres.conf
# needs files that exist and are character devices. Settings that are not obvious:
#   proctrack/linuxproc, task/none, no accounting - no cgroups and no slurmdbd needed.
#   AuthInfo=cred_expire=10 - a requeued job waits cred_expire+1 s before it may run again (default
#                          120 s); with sched_interval=2 it runs again ~12 s after the requeue.
#   MinJobAge=5          - finished jobs leave squeue fast, and `sbatch --wait` then polls every 2 s
#                          (it polls more slowly when MinJobAge is large).
#   KillWait=5           - SIGTERM -> SIGKILL delay on cancel/time limit (default 30 s).
#   SelectTypeParameters=CR_CPU - memory is not a consumable, so jobs without --mem do not each
#                          take the node's whole memory and can run side by side.
#   ReturnToService=2    - a node marked DOWN (e.g. slurmd was slow) comes back when it registers.
#   Addresses are 127.0.0.1, so nothing depends on name resolution. Ports 6817/6818 are the
#   defaults: one such cluster per machine at a time.
set -u
export PATH="$PATH:/usr/sbin:/sbin"
CMD="${1:-}"
STATE="${2:-/tmp/diffusion-operators-slurm}"
case "$CMD" in start|stop) ;; *) echo "usage: $0 start|stop [STATE_DIR]" >&2; exit 2 ;; esac
[ "$CMD" = stop ] && [ ! -d "$STATE" ] && exit 0   # nothing was ever started there
mkdir -p "$STATE" && STATE="$(cd "$STATE" && pwd)"  # absolute: it goes into slurm.conf
CONF="$STATE/slurm.conf"
export SLURM_CONF="$CONF"
NODE="$(hostname -s)"
say() { echo "local_slurm: $*" >&2; }

# pid_ok PIDFILE NAME: the pid in PIDFILE is alive and is NAME (guards against reused pids).
pid_ok() { local p; p="$(cat "$1" 2>/dev/null)" || return 1
           [ -n "$p" ] && [ "$(cat "/proc/$p/comm" 2>/dev/null)" = "$2" ]; }
# running PID: alive and not a zombie (a daemon's parent is init, which may reap it late).
running() { local st; st="$(ps -o stat= -p "$1" 2>/dev/null)"; [ -n "$st" ] && [ "${st#Z}" = "$st" ]; }
# stop_daemons NAME...: SIGTERM to each of our daemons (pid in STATE/NAME.pid), all at once;
# wait up to 15 s for them to exit, then SIGKILL. Removes the pid files.
stop_daemons() {
  local n p pids="" left i
  for n; do
    pid_ok "$STATE/$n.pid" "$n" && { p="$(cat "$STATE/$n.pid")"; kill "$p"; pids="$pids $p"; }
    rm -f "$STATE/$n.pid"
  done
  for i in $(seq 150); do left=""; for p in $pids; do running "$p" && left="$left $p"; done
                         [ -z "$left" ] && return 0; sleep 0.1; done
  say "killing$left, which ignored SIGTERM"; kill -9 $left
}

do_stop() {
  if pid_ok "$STATE/slurmctld.pid" slurmctld; then
    local ids i; ids="$(squeue -h -o %A 2>/dev/null | sort -u)"
    [ -n "$ids" ] && scancel $ids 2>/dev/null
    for i in $(seq 60); do [ -z "$(squeue -h -o %A 2>/dev/null)" ] && break; sleep 0.5; done
    [ -n "$(squeue -h -o %A 2>/dev/null)" ] && say "jobs still in the queue after 30 s; stopping anyway"
  fi
  stop_daemons slurmd slurmctld munged   # munged.pid exists only if `start` started munged
}

install_packages() {
  local pkgs="slurmctld slurmd slurm-client munge" prc=/usr/sbin/policy-rc.d made="" rc
  [ "$(id -u)" = 0 ] || { say "Slurm is not installed and installing it needs root"; exit 3; }
  command -v apt-get >/dev/null || { say "Slurm is not installed and there is no apt-get"; exit 3; }
  # No service may start during the install (no systemd here; the daemons are ours to start).
  [ -e "$prc" ] || { printf '#!/bin/sh\nexit 101\n' >"$prc" && chmod 755 "$prc" && made=1; }
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q $pkgs >"$STATE/apt.log" 2>&1 ||
    { apt-get update -q && apt-get install -y -q $pkgs; } >>"$STATE/apt.log" 2>&1
  rc=$?
  [ -n "$made" ] && rm -f "$prc"
  [ "$rc" = 0 ] || { say "apt-get install $pkgs failed (see $STATE/apt.log)"; exit 3; }
}

start_munge() {
  munge -n >/dev/null 2>&1 && return 0   # a munged already serves: use it, do not own it
  local key=/etc/munge/munge.key i
  [ -s "$key" ] || mungekey -c -k "$key" 2>/dev/null || create-munge-key -f >/dev/null 2>&1
  chown munge:munge "$key" && chmod 0400 "$key"
  install -d -o munge -g munge -m 0755 /run/munge   # /run is a tmpfs; no systemd creates it
  runuser -u munge -- munged --force || { say "munged did not start"; return 1; }
  for i in $(seq 50); do pid_ok /run/munge/munged.pid munged && break; sleep 0.1; done
  cp /run/munge/munged.pid "$STATE/munged.pid"   # records that this script owns that munged
}

write_conf() {
  mkdir -p "$STATE/dev" "$STATE/ctld" "$STATE/spool"
  local d; for d in 0 1; do [ -c "$STATE/dev/gpu$d" ] || mknod "$STATE/dev/gpu$d" c 1 3; done
  cat >"$CONF" <<EOF
# Written by scripts/local_slurm.sh; see the comment at its top.
ClusterName=local
SlurmctldHost=$NODE(127.0.0.1)
AuthType=auth/munge
AuthInfo=cred_expire=10
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/spool
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$STATE/slurmctld.log
SlurmdLogFile=$STATE/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
SlurmdParameters=config_overrides
GresTypes=gpu
SchedulerParameters=sched_interval=2,bf_interval=1
JobRequeue=1
MinJobAge=5
KillWait=5
InactiveLimit=0
SlurmctldTimeout=30
SlurmdTimeout=30
ReturnToService=2
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=4 RealMemory=8000 Gres=gpu:2 State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  printf 'AutoDetect=off\nName=gpu File=%s/dev/gpu[0-1]\n' "$STATE" >"$STATE/gres.conf"
}

if [ "$CMD" = stop ]; then do_stop; exit 0; fi

if pid_ok "$STATE/slurmctld.pid" slurmctld && pid_ok "$STATE/slurmd.pid" slurmd; then
  echo "export SLURM_CONF=$CONF"; exit 0
fi
do_stop   # whatever is left of an earlier, half-started cluster
for c in sbatch slurmctld slurmd munged; do command -v "$c" >/dev/null || { install_packages; break; }; done
[ "$(id -u)" = 0 ] || { say "the cluster's daemons must be started as root"; exit 3; }
write_conf
fail() { say "$1; the logs' tails:"
         tail -n 20 "$STATE/slurmctld.log" "$STATE/slurmd.log" /var/log/munge/munged.log >&2 2>/dev/null
         do_stop; exit 1; }
start_munge || fail "munged did not start"
slurmctld -c -f "$CONF" || fail "slurmctld did not start"   # -c: forget jobs of an earlier run
slurmd -f "$CONF" || fail "slurmd did not start"
end=$((SECONDS + 60))   # the daemons write their pid files a moment after forking; then the node registers
while [ "$SECONDS" -lt "$end" ]; do
  for d in slurmctld slurmd; do   # a pid file whose daemon is gone: it started, then died
    [ -s "$STATE/$d.pid" ] && ! pid_ok "$STATE/$d.pid" "$d" && fail "$d exited"; done
  pid_ok "$STATE/slurmctld.pid" slurmctld && pid_ok "$STATE/slurmd.pid" slurmd &&
    [ "$(sinfo -h -N -n "$NODE" -o %T 2>/dev/null)" = idle ] && { echo "export SLURM_CONF=$CONF"; exit 0; }
  sleep 0.1
done
fail "node $NODE not idle after 60 s"
