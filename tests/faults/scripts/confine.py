"""Test helper for the path-confinement tests. Usage: confine.py MODE OUTSIDE_DIR INPUT_JSON [RUN_ID]

Runs in its run directory (its cwd) and leaves the outputs there in one of
several ways; OUTSIDE_DIR is a directory outside every run directory.

Modes:
  link-out    output.json is a symbolic link to OUTSIDE_DIR/secret.json
  dirlink-out res/ is a symbolic link to OUTSIDE_DIR (so res/output.json is outside)
  link-in     output.json is a symbolic link to real.json in the run directory
  fail-first  exit 1 when RUN_ID ends in "-a1" (a campaign's first attempt), else
              write output.json; every call first writes mine.txt with its x1 and RUN_ID
"""

import json
import os
import sys


def main() -> int:
    mode, outside, input_path, *rest = sys.argv[1:]
    run_id = rest[0] if rest else ""
    with open(input_path, encoding="utf-8") as fh:
        x = json.load(fh)
    y = x["x1"] * 2.0
    if mode == "link-out":
        os.symlink(os.path.join(outside, "secret.json"), "output.json")
    elif mode == "dirlink-out":
        os.symlink(outside, "res")
    elif mode == "link-in":
        with open("real.json", "w", encoding="utf-8") as fh:
            json.dump({"y": y}, fh)
        os.symlink("real.json", "output.json")
    elif mode == "fail-first":
        with open("mine.txt", "w", encoding="utf-8") as fh:
            fh.write(f"{x['x1']!r} {run_id}")
        if run_id.endswith("-a1"):
            return 1
        with open("output.json", "w", encoding="utf-8") as fh:
            json.dump({"y": y}, fh)
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
