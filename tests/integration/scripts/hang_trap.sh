#!/bin/sh
# Test helper: never finishes and ignores SIGTERM (so does its background
# grandchild, which inherits the ignored disposition); only SIGKILL stops them.
trap '' TERM
echo $$ > pids.txt
sleep 1000 &
echo $! >> pids.txt
while :; do sleep 1; done
