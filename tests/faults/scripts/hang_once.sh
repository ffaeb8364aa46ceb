#!/bin/sh
# Test helper for the worker-kill test. Usage: hang_once.sh CLAIM_DIR X1
#
# The first run (the one whose mkdir of CLAIM_DIR succeeds) writes its pid
# and its background sleep's pid into CLAIM_DIR/pids.txt and never finishes
# on its own. Every later run prints "y = X1" and exits 0.
if mkdir "$1" 2>/dev/null; then
    sleep 1000 &
    echo "$$ $!" > "$1/pids.txt"
    wait
fi
echo "y = $2"
