#!/usr/bin/env bash
# Start a one-node SLURM on this machine (localhost only) for the `slurm` tests.
#
#   sudo ci/slurm-up.sh        # then: .venv/bin/python -m pytest -m slurm tests/slurm
#   sudo ci/slurm-down.sh      # stop what this script started
#
# Installs Debian's slurmctld, slurmd, slurm-client and munge when missing,
# writes a one-node /etc/slurm/slurm.conf (node "localhost", partition "debug",
# CPUs = nproc, RealMemory = total minus 1024 MB), starts munged, slurmctld and
# slurmd, and waits until the node is idle. The pids of the daemons it started
# are recorded in $SURROGATE_AL_SLURM_STATE/pids (default /tmp/surrogate_al_slurm)
# so slurm-down.sh stops exactly those. Running it again while that SLURM is up
# does nothing.
#
# Exit status: 0 SLURM is up; 2 not root; 3 packages cannot be installed (no apt,
# repository unreachable); 4 an existing slurm.conf that this script did not
# write; 1 a daemon did not start or the node did not become idle. The reason is
# printed on stderr in one line that starts with "slurm-up:".
set -euo pipefail

STATE_DIR=${SURROGATE_AL_SLURM_STATE:-/tmp/surrogate_al_slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# written by surrogate_al ci/slurm-up.sh"
PACKAGES=(slurmctld slurmd slurm-client munge)
WAIT_S=${SURROGATE_AL_SLURM_WAIT:-60}

say() { echo "slurm-up: $*" >&2; }
die() {
    local code=$1
    shift
    say "$*"
    exit "$code"
}

# -- preconditions ----------------------------------------------------------------------
[ "$(id -u)" -eq 0 ] || die 2 "must run as root (it installs packages and starts daemons); got uid $(id -u)"

# The node's state as sinfo prints it ("idle", "mix", "down*", ...); empty when slurmctld does not answer.
node_state() {
    local s
    s=$(sinfo -h -o %t 2>/dev/null | head -n 1) || s=""
    echo "${s// /}"
}

pid_alive() { [ -n "${1:-}" ] && kill -0 "$1" 2>/dev/null; }

# Already up and started by us: nothing to do. A stale record (a daemon died): clean up first.
if [ -f "$STATE_DIR/pids" ]; then
    all_alive=1
    while read -r _name pid; do
        pid_alive "$pid" || all_alive=0
    done <"$STATE_DIR/pids"
    state=$(node_state || true)
    if [ "$all_alive" = 1 ] && { [ "$state" = idle ] || [ "$state" = mix ] || [ "$state" = alloc ]; }; then
        say "already up (pids in $STATE_DIR/pids); node localhost is $state"
        exit 0
    fi
    say "stale state in $STATE_DIR (a daemon is gone or the node is '${state:-unknown}'); stopping what is left first"
    "$(dirname "$0")/slurm-down.sh" || true
fi

# -- packages ---------------------------------------------------------------------------
have_all() {
    [ -x /usr/sbin/munged ] && [ -x /usr/sbin/slurmctld ] && [ -x /usr/sbin/slurmd ] &&
        command -v sinfo >/dev/null 2>&1 && command -v scancel >/dev/null 2>&1 && command -v munge >/dev/null 2>&1
}
mkdir -p "$STATE_DIR"
if ! have_all; then
    command -v apt-get >/dev/null 2>&1 || die 3 "SLURM is not installed and there is no apt-get to install it (${PACKAGES[*]})"
    say "installing ${PACKAGES[*]} (apt-get, --no-install-recommends)"
    export DEBIAN_FRONTEND=noninteractive
    APT_LOG="$STATE_DIR/apt.log"
    if ! apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >"$APT_LOG" 2>&1 </dev/null; then
        # The package lists may be missing or stale: refresh them once.
        if ! apt-get update -q >>"$APT_LOG" 2>&1 </dev/null; then
            tail -n 5 "$APT_LOG" | sed 's/^/    /' >&2
            die 3 "apt-get update failed (package repository unreachable?); cannot install ${PACKAGES[*]}"
        fi
        if ! apt-get install -y -q --no-install-recommends "${PACKAGES[@]}" >>"$APT_LOG" 2>&1 </dev/null; then
            tail -n 5 "$APT_LOG" | sed 's/^/    /' >&2
            die 3 "apt-get install ${PACKAGES[*]} failed (repository unreachable or packages unavailable; log: $APT_LOG)"
        fi
    fi
    have_all || die 3 "installed ${PACKAGES[*]} but munged/slurmctld/slurmd/sinfo/scancel are still missing"
fi

# -- configuration ----------------------------------------------------------------------
if [ -f "$CONF" ] && ! grep -qF "$MARKER" "$CONF"; then
    die 4 "$CONF exists and was not written by this script; refusing to replace a real SLURM configuration"
fi
CPUS=$(nproc)
MEM_MB=$(awk '/^MemTotal:/ { printf "%d", $2 / 1024 }' /proc/meminfo)
REAL_MB=$((MEM_MB - 1024))
[ "$REAL_MB" -gt 256 ] || REAL_MB=$((MEM_MB / 2))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm "$STATE_DIR"
cat >"$CONF" <<EOF
$MARKER
# A one-node cluster on localhost for tests; remove with ci/slurm-down.sh.
ClusterName=surrogate-al-ci
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
# No slurmdbd, so no sacct: finished jobs are logged one per line here instead.
JobCompType=jobcomp/filetxt
JobCompLoc=/var/log/slurm/jobcomp.log
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
ReturnToService=2
MailProg=/bin/true
MpiDefault=none
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldTimeout=30
SlurmdTimeout=30
KillWait=5
NodeName=localhost NodeHostname=localhost CPUs=$CPUS RealMemory=$REAL_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF

# -- daemons ----------------------------------------------------------------------------
: >"$STATE_DIR/pids.new"
record() { echo "$1 $2" >>"$STATE_DIR/pids.new"; }

# Waits for a pid file to name a live process; prints the pid.
wait_pidfile() {
    local file=$1 i
    for i in $(seq 1 100); do
        if [ -s "$file" ] && pid_alive "$(cat "$file")"; then
            cat "$file"
            return 0
        fi
        sleep 0.1
    done
    return 1
}

log_tail() { [ -f "$1" ] && tail -n 15 "$1" | sed 's/^/    /' >&2 || true; }

# munge: reuse a munged that already answers (not ours: never recorded, never stopped).
if munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    say "munged already running; using it"
else
    if [ ! -s /etc/munge/munge.key ]; then
        if command -v mungekey >/dev/null 2>&1; then
            mungekey --create --force >/dev/null
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
        chown munge:munge /etc/munge/munge.key
        chmod 0400 /etc/munge/munge.key
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge:munge /run/munge /var/log/munge /var/lib/munge
    chmod 0755 /run/munge
    rm -f /run/munge/munged.pid
    runuser -u munge -- /usr/sbin/munged || die 1 "munged did not start (see /var/log/munge/munged.log)"
    pid=$(wait_pidfile /run/munge/munged.pid) || die 1 "munged started but wrote no pid file"
    record munged "$pid"
    munge -n | unmunge >/dev/null || die 1 "munged is running but munge -n | unmunge fails"
fi

start_daemon() {
    local name=$1 pidfile=$2 logfile=$3
    shift 3
    if [ -s "$pidfile" ] && pid_alive "$(cat "$pidfile")"; then
        die 1 "$name already runs (pid $(cat "$pidfile")) but was not started by this script; stop it first"
    fi
    rm -f "$pidfile"
    "$@" || { log_tail "$logfile"; die 1 "$name did not start (log: $logfile)"; }
    local pid
    pid=$(wait_pidfile "$pidfile") || { log_tail "$logfile"; die 1 "$name exited right after starting (log: $logfile)"; }
    record "$name" "$pid"
}

# A fresh controller (slurm-down.sh removed its state): job ids restart at 1, so does the job log.
: >/var/log/slurm/jobcomp.log
start_daemon slurmctld /run/slurmctld.pid /var/log/slurm/slurmctld.log /usr/sbin/slurmctld
start_daemon slurmd /run/slurmd.pid /var/log/slurm/slurmd.log /usr/sbin/slurmd -N localhost
mv "$STATE_DIR/pids.new" "$STATE_DIR/pids"

# -- wait for the node ------------------------------------------------------------------
state=""
for _ in $(seq 1 $((WAIT_S * 2))); do
    state=$(node_state)
    [ "$state" = idle ] && break
    if [ "${state%\*}" = down ] || [ "${state%\*}" = drain ]; then
        scontrol update NodeName=localhost State=RESUME >/dev/null 2>&1 || true
    fi
    sleep 0.5
done
if [ "$state" != idle ]; then
    log_tail /var/log/slurm/slurmctld.log
    log_tail /var/log/slurm/slurmd.log
    die 1 "node localhost is '${state:-unknown}', not idle, after ${WAIT_S} s (ci/slurm-down.sh stops the daemons)"
fi
say "SLURM is up: node localhost idle, partition debug, $CPUS CPUs, ${REAL_MB} MB (pids in $STATE_DIR/pids)"
