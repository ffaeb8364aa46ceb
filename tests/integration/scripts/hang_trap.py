"""Test helper: a Python script that ignores SIGTERM, starts a child that
ignores it too, records both pids in pids.txt, and never finishes."""

import os
import signal
import subprocess
import time

signal.signal(signal.SIGTERM, signal.SIG_IGN)
child = subprocess.Popen(["sleep", "1000"])  # inherits SIG_IGN for SIGTERM
with open("pids.txt", "w") as fh:
    fh.write(f"{os.getpid()}\n{child.pid}\n")
while True:
    time.sleep(1)
