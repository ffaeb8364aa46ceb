#!/bin/sh
# Test helper for the stop-signal tests. Usage: sleeper.sh MODE_DIR X1 X2
#
# Prints "y = X1" (key = value on stdout) and exits 0; how long it takes
# first depends on files in MODE_DIR: "fast" present: at once; "short"
# present: after 2 s; neither: after a 60 s sleep in a background child
# (a second member of the run's process group, as real job scripts have).
if [ -e "$1/fast" ]; then echo "y = $2"; exit 0; fi
if [ -e "$1/short" ]; then sleep 2; echo "y = $2"; exit 0; fi
sleep 60 &
wait
echo "y = $2"
