#!/bin/sh
# Test helper: never finishes. Leaves a grandchild in the background and records
# its own pid and the grandchild's in pids.txt (in the run directory).
echo $$ > pids.txt
sleep 1000 &
echo $! >> pids.txt
while :; do sleep 1; done
