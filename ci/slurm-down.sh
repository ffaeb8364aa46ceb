#!/usr/bin/env bash
# Stop the one-node SLURM that ci/slurm-up.sh started.
#
# Cancels every job of the current user, stops exactly the daemons whose pids
# slurm-up.sh recorded in $SURROGATE_AL_SLURM_STATE/pids (never by name; a pid
# that now belongs to another program is left alone), removes the controller's
# state (so job ids start afresh next time) and the slurm.conf that slurm-up.sh
# wrote, and deletes the state directory. Safe to run any number of times, also
# when nothing was started: it then does nothing and exits 0.
set -uo pipefail

STATE_DIR=${SURROGATE_AL_SLURM_STATE:-/tmp/surrogate_al_slurm}
CONF=/etc/slurm/slurm.conf
MARKER="# written by surrogate_al ci/slurm-up.sh"

say() { echo "slurm-down: $*" >&2; }

if [ ! -f "$STATE_DIR/pids" ] && [ ! -f "$STATE_DIR/pids.new" ]; then
    say "nothing to stop (no $STATE_DIR/pids)"
    rm -rf "$STATE_DIR"
    exit 0
fi

# 1. Jobs first, while slurmctld and slurmd still run to deliver the signals.
if command -v scancel >/dev/null 2>&1 && command -v squeue >/dev/null 2>&1 && squeue -h >/dev/null 2>&1; then
    user=$(id -un)
    scancel --full --user="$user" >/dev/null 2>&1 || true
    for _ in $(seq 1 40); do
        [ -z "$(squeue -h -u "$user" -o %i 2>/dev/null)" ] && break
        sleep 0.25
    done
    left=$(squeue -h -u "$user" -o %i 2>/dev/null | wc -l)
    [ "$left" -eq 0 ] || say "$left job(s) still listed after scancel; stopping the daemons anyway"
fi

# 2. The daemons we started, newest first (slurmd, slurmctld, munged), by recorded pid.
# A pid is only signalled while /proc/PID/comm still names the daemon we started.
stop_pid() {
    local name=$1 pid=$2 comm
    comm=$(cat "/proc/$pid/comm" 2>/dev/null) || { say "$name (pid $pid) already gone"; return 0; }
    if [ "$comm" != "$name" ]; then
        say "pid $pid is now '$comm', not $name; leaving it alone"
        return 0
    fi
    kill -TERM "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do
        kill -0 "$pid" 2>/dev/null || { say "stopped $name (pid $pid)"; return 0; }
        sleep 0.1
    done
    say "$name (pid $pid) ignored SIGTERM for 5 s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
}
for file in "$STATE_DIR/pids" "$STATE_DIR/pids.new"; do
    [ -f "$file" ] || continue
    tac "$file" | while read -r name pid; do
        [ -n "${pid:-}" ] && stop_pid "$name" "$pid"
    done
done

# 3. Clean state for the next start.
rm -rf /var/spool/slurmctld /var/spool/slurmd
rm -f /run/slurmctld.pid /run/slurmd.pid
if [ -f "$CONF" ] && grep -qF "$MARKER" "$CONF"; then
    rm -f "$CONF"
fi
rm -rf "$STATE_DIR"
say "done"
exit 0
