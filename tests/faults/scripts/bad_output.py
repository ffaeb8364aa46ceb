"""Test helper: a simulator script whose run misbehaves in one of several ways, each once.

Usage: bad_output.py MODES CLAIM_DIR INPUT_JSON [OUTPUT_FILE]

MODES is a comma-separated list. Each run claims the first mode nobody has
claimed yet (``mkdir CLAIM_DIR/<mode>`` is atomic across worker processes)
and, once every mode is taken, behaves: it writes ``{"y": x1 + x2}`` to
OUTPUT_FILE (when given) and prints ``y = <value>`` on stdout. Every run exits 0: the
bad ones are bad only in what they leave behind. The mode goes to stderr,
so the stored stderr tail tells which run did what.

Modes: nan, inf (non-finite numbers), shape (a list where a number belongs),
nofile (no output file at all), malformed (truncated JSON), flood (1 GiB of
lines on stdout and 4 MiB on stderr, then no output; its parent's pid, the
worker's, goes to CLAIM_DIR/flood.pid first).
"""

import json
import os
import sys


def claim(modes: list[str], claim_dir: str) -> str:
    for mode in modes:
        try:
            os.mkdir(os.path.join(claim_dir, mode))
        except FileExistsError:
            continue
        return mode
    return "ok"


def main() -> int:
    modes, claim_dir, input_path, *rest = sys.argv[1:]
    output_path = rest[0] if rest else None  # none: outputs are read from stdout
    mode = claim([m for m in modes.split(",") if m], claim_dir)
    with open(input_path, encoding="utf-8") as fh:
        x = json.load(fh)
    y = x["x1"] + x["x2"]
    print(f"mode {mode}", file=sys.stderr, flush=True)

    def write(text: str) -> None:
        if output_path is None:
            return
        with open(output_path, "w", encoding="utf-8") as fh:
            fh.write(text)

    if mode == "nan":
        write('{"y": NaN}')
    elif mode == "inf":
        write('{"y": Infinity}')
    elif mode == "shape":
        write(json.dumps({"y": [1.0, 2.0, 3.0]}))
    elif mode == "nofile":
        print("finished without writing anything")
    elif mode == "malformed":
        write('{"y": 1.0, ')
    elif mode == "flood":
        with open(os.path.join(claim_dir, "flood.pid.tmp"), "w") as fh:
            fh.write(str(os.getppid()))
        os.replace(os.path.join(claim_dir, "flood.pid.tmp"), os.path.join(claim_dir, "flood.pid"))
        chunk = (b"x" * 1023 + b"\n") * 1024  # 1 MiB of 1 KiB lines
        out = sys.stdout.buffer
        for _ in range(1024):  # 1 GiB
            out.write(chunk)
        out.flush()
        sys.stderr.write("e" * 4 * 1024 * 1024 + "\nflood done\n")  # 4 MiB on stderr too
    else:
        write(json.dumps({"y": y}))
        print(f"y = {y!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
