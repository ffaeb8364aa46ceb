#!/bin/sh
# Test helper: finishes normally (writes its output) but leaves a process
# running in the background, which the wrapper must not let survive.
sleep 1000 &
echo $! > bg.pid
echo '{"y": 1.5}' > "$1"
exit 0
