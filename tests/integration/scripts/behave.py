"""Test helper: a stand-in simulator script whose behaviour is picked by MODE.

Usage: behave.py MODE INPUT_JSON OUTPUT_FILE

Reads ``{"x1": ..., "x2": ...}`` from INPUT_JSON and, depending on MODE, writes
outputs (y = x1**2 + x2, z = x1 - x2) or misbehaves the way real scripts do.
"""

import json
import math
import os
import signal
import sys


def main() -> int:
    mode, input_path, output_path = sys.argv[1:4]
    with open(input_path, encoding="utf-8") as fh:
        x = json.load(fh)
    y = x["x1"] ** 2 + x["x2"]
    z = x["x1"] - x["x2"]
    print(f"running mode {mode} in {os.getcwd()}")

    def write(text: str) -> None:
        with open(output_path, "w", encoding="utf-8") as fh:
            fh.write(text)

    if mode == "ok":
        write(json.dumps({"y": y, "z": z, "extra": "ignored"}))
    elif mode == "exit1":
        print("solver diverged at step 17", file=sys.stderr)
        write(json.dumps({"y": y, "z": z}))  # written, but the exit code says the run failed
        return 1
    elif mode == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    elif mode == "malformed":
        write('{"y": 1.0, "z": ')
    elif mode == "omit":
        write(json.dumps({"z": z, "w": 1.0}))
    elif mode == "nan":
        write(json.dumps({"y": math.nan, "z": z}))  # Python writes the non-standard token NaN
    elif mode == "text":
        write(json.dumps({"y": "diverged", "z": z}))
    elif mode == "nofile":
        pass
    elif mode == "env":
        write(json.dumps({"y": float(os.environ["SA_TEST_SCALE"]) * x["x1"], "z": len(os.environ["SA_TEST_TAG"])}))
    elif mode == "csv":
        write(f"y, z, iterations\n{y!r}, {z!r}, 12\n")
    elif mode == "csv_rows":
        write(f"y,z\n{y!r},{z!r}\n{y!r},{z!r}\n")
    elif mode == "keyvalue":
        # A solver log: noise, progress values, the final values last, a Fortran exponent.
        print("iteration 1: y = 1000")
        print("y = 1000")
        print(f"y = {y!r}")
        print(f"  z   =   {z * 1000:.6f}D-03   ")
        print("done: all good")
    elif mode == "parse":
        print(f"final: {y * 10!r}")
        print(f"final: {y!r}")
        with open("z.txt", "w") as fh:
            fh.write(f"{z!r}\n")
    elif mode == "big":
        chunk = b"x" * 1023 + b"\n"
        out = sys.stdout.buffer
        out.flush()
        for _ in range(50 * 1024):  # 50 MiB
            out.write(chunk)
        out.write(b"END\n")
        out.flush()
        write(json.dumps({"y": y, "z": z}))
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
