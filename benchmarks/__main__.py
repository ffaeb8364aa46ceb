"""Every benchmark in one command.

    python -m benchmarks run --quick   # a subset, under 15 minutes on 2 cores
    python -m benchmarks run --full    # what docs/benchmarks.md reports (hours on 2 cores)

Each benchmark runs in its own process (its own torch thread settings; one
failing does not stop the rest), prints its tables and writes its JSON under
``benchmarks/results/`` (label efficiency's full run: ``docs/results/``, in
git); an index of the run (commands, exit codes, wall times, JSON paths) goes
to ``benchmarks/results/run-quick.json`` or ``run-full.json`` so later runs
can be compared file by file.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import label_efficiency

RESULTS = Path("benchmarks/results")

#: name -> (arguments for --quick, arguments for --full, JSON it writes: under the preset's folder,
#: or where "{label_efficiency}" names that benchmark's own results folder for the preset)
BENCHMARKS: dict[str, tuple[list[str], list[str], str]] = {
    "surrogate_speed": (
        ["--quick", "--threads", "1", "--json", "{dir}/surrogate_speed.json"],
        ["--threads", "1", "--json", "{dir}/surrogate_speed.json"],
        "surrogate_speed.json",
    ),
    "acquisition_speed": (
        ["--threads", "1", "--dims", "2", "6", "--pools", "1000", "--n", "100", "--json",
         "{dir}/acquisition_speed.json"],
        ["--threads", "1", "--json", "{dir}/acquisition_speed.json"],
        "acquisition_speed.json",
    ),
    "store_speed": (
        ["--runs", "10000", "--appends", "200", "--json", "{dir}/store_speed.json"],
        ["--json", "{dir}/store_speed.json"],
        "store_speed.json",
    ),
    "throughput": (
        ["--quick", "--json", "{dir}/throughput.json"],
        ["--json", "{dir}/throughput.json"],
        "throughput.json",
    ),
    "warm_start": (
        ["--quick", "--json", "{dir}/warm_start.json"],
        ["--json", "{dir}/warm_start.json"],
        "warm_start.json",
    ),
    "label_efficiency": (
        ["--quick"],
        ["--full", "--jobs", "2"],
        "{label_efficiency}/label_efficiency.json",
    ),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the benchmarks")
    size = run.add_mutually_exclusive_group(required=True)
    size.add_argument("--quick", action="store_true", help="a subset of every benchmark (< 15 min on 2 cores)")
    size.add_argument("--full", action="store_true", help="the full benchmarks behind docs/benchmarks.md")
    run.add_argument("--only", nargs="+", choices=list(BENCHMARKS), help="run only these benchmarks")
    args = parser.parse_args(argv)

    preset = "full" if args.full else "quick"
    out = RESULTS / preset
    out.mkdir(parents=True, exist_ok=True)
    index: dict[str, object] = {
        "date": time.strftime("%Y-%m-%d %H:%M"),
        "preset": preset,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "benchmarks": {},
    }
    failed = []
    t_all = time.perf_counter()
    for name in args.only or list(BENCHMARKS):
        quick, full, json_name = BENCHMARKS[name]
        extra = [a.format(dir=out) for a in (full if args.full else quick)]
        command = [sys.executable, "-m", f"benchmarks.{name}", *extra]
        print(f"\n=== {name}: {' '.join(command[1:])}", flush=True)
        t = time.perf_counter()
        code = subprocess.call(command)
        wall = time.perf_counter() - t
        json_path = out / json_name if "{" not in json_name else Path(
            json_name.format(label_efficiency=label_efficiency.RESULTS[preset]))
        index["benchmarks"][name] = {  # type: ignore[index]
            "command": " ".join(["python", *command[1:]]),
            "exit_code": code,
            "wall_s": round(wall, 1),
            "json": str(json_path),
        }
        print(f"=== {name}: exit {code} in {wall:.0f} s; results in {json_path}", flush=True)
        if code != 0:
            failed.append(name)
    index["wall_s"] = round(time.perf_counter() - t_all, 1)
    (RESULTS / f"run-{preset}.json").write_text(json.dumps(index, indent=2))
    print(f"\nall benchmarks: {index['wall_s']:.0f} s; index in {RESULTS / f'run-{preset}.json'}"
          + (f"; FAILED: {', '.join(failed)}" if failed else ""))
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
