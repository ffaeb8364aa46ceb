#!/bin/sh
# Test helper for the timeout tests. Usage: hang_first.sh CLAIM_DIR X1 X2
#
# The first run (the one whose mkdir of CLAIM_DIR succeeds) ignores SIGTERM,
# leaves a background sleep that ignores it too (the disposition is
# inherited), records both pids in pids.txt in its run directory, and never
# finishes: only a SIGKILL of its whole process group stops it. Every later
# run prints "y = X1" (key = value on stdout) and exits 0.
if mkdir "$1" 2>/dev/null; then
    trap '' TERM
    echo $$ > pids.txt
    sleep 1000 &
    echo $! >> pids.txt
    while :; do sleep 1; done
fi
echo "y = $2"
