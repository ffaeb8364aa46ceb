"""Test helper: a solver that reads a Fortran-style input deck and logs its result.

Usage: deck_sim.py DECK

The deck holds ``name = value`` lines between ``&params`` and ``/``. The
result is printed as ``RESULT y = <value>`` among other log lines.
"""

import sys


def main() -> int:
    params = {}
    with open(sys.argv[1], encoding="utf-8") as fh:
        for line in fh:
            if "=" in line:
                key, value = line.split("=", 1)
                params[key.strip()] = value.strip()
    x1, x2, mesh = float(params["x1"]), float(params["x2"]), int(params["mesh"])
    print(f"mesh {mesh}, reading deck {sys.argv[1]}")
    print("RESULT y = 999 (preliminary)")
    print(f"RESULT y = {x1 * mesh + x2!r}")
    print(f"RESULT z = {x1 - x2!r}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
