"""Test helper: records exactly what it received, byte for byte.

Usage: echo_received.py INPUT_FILE OUTPUT_JSON [ARGS...]

Writes ``received.json`` in the working directory with the extra arguments and
the raw text of INPUT_FILE, and ``{"n_args": ...}`` to OUTPUT_JSON.
"""

import json
import os
import sys


def main() -> int:
    input_path, output_path, *args = sys.argv[1:]
    with open(input_path, encoding="utf-8") as fh:
        input_text = fh.read()
    with open("received.json", "w", encoding="utf-8") as fh:
        json.dump({"args": args, "input_text": input_text, "cwd": os.getcwd()}, fh, ensure_ascii=False)
    with open(output_path, "w", encoding="utf-8") as fh:
        json.dump({"n_args": len(args)}, fh)
    return 0


if __name__ == "__main__":
    sys.exit(main())
