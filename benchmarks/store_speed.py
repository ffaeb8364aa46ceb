"""Store speed: append rate, resume time and read times of the campaign store.

Run from the repository root::

    python -m benchmarks.store_speed [--runs 100000] [--appends 1000] [--dir DIR] [--json PATH]

Parts (``d = 6`` inputs, ``m = 2`` outputs, 60-byte stderr tails):

(a) **Append rate**: ``add_run`` through the public API on a fresh store,
    each one durable (journal ``os.write`` + ``os.fsync``) before it returns;
    proposals in batches of 10 (one record per batch). Reports runs/s and the
    latency percentiles of ``add_run``. The rate is bounded by the file
    system's fsync latency, which is also measured on its own.
(b) **Resume after a kill with a 100 000-run journal** (the worst case: no
    snapshot since creation). A forked child writes ``--runs`` proposals and
    runs through the public API with ``os.fsync`` disabled (100 000 fsync'd
    appends would take ~10 minutes at ~5 ms per fsync and measure only the
    disk) and SIGKILLs itself; the parent times ``open(mode="a")``: breaking
    the stale lock, replaying the journal, writing the snapshot.
(c) **The 100 000-run store**: ``open(mode="r")``, ``open(mode="a")`` on a
    cleanly closed store (resume), ``snapshot()`` (the periodic atomic
    rewrite), ``close()``, ``arrays()``, ``runs()``, ``summary()``, the
    plain-h5py read of the docs example, file size, and the append rate on
    the big store (the periodic snapshot included).

Prints a markdown table and writes JSON (default
``benchmarks/results/store_speed.json``; the folder is git-ignored). Times are
wall-clock seconds of one run (reads: best of three).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import multiprocessing
import os
import platform
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from surrogate_al.store import CampaignStore

logger = logging.getLogger(__name__)

DEFAULT_JSON = Path(__file__).parent / "results" / "store_speed.json"
INPUTS = tuple(f"x{i}" for i in range(6))
OUTPUTS = ("y0", "y1")
STDERR = "warning: mesh refinement level 3 reached; continuing\n"


def best_of(fn: Callable[[], Any], repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def fsync_latency(directory: Path, n: int = 200) -> float:
    """Median seconds of one small append + fsync in ``directory``."""
    probe = directory / "fsync_probe"
    fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    times = []
    try:
        for _ in range(n):
            t0 = time.perf_counter()
            os.write(fd, b"x" * 300 + b"\n")
            os.fsync(fd)
            times.append(time.perf_counter() - t0)
    finally:
        os.close(fd)
        probe.unlink()
    return statistics.median(times)


def append_runs(store: CampaignStore, n: int, rng: np.random.Generator, batch0: int = 0) -> list[float]:
    """Propose and settle ``n`` points through the public API; returns add_run latencies."""
    latencies = []
    batch = batch0
    while len(latencies) < n:
        unit = rng.random((min(10, n - len(latencies)), len(INPUTS)))
        ids = store.add_proposals(unit * 4.0 - 2.0, unit, batch_id=batch, source="hybrid", U=unit[:, 0],
                                  D=unit[:, 1], J=unit[:, 2], lam=0.5, surrogate_version=batch)
        batch += 1
        for pid, x in zip(ids, unit):
            now = time.time()
            t0 = time.perf_counter()
            store.add_run(proposal_id=pid, attempt=1, final=True, status="ok",
                          outputs={"y0": float(x.sum()), "y1": float(x[0] * x[1])}, stderr_tail=STDERR,
                          submit_time=now, start_time=now, finish_time=now, wall_time=1.0,
                          worker="tcp://10.0.0.7:40123", host="node07")
            latencies.append(time.perf_counter() - t0)
    return latencies


def rate_summary(latencies: list[float], total: float) -> dict[str, float]:
    lat = np.array(latencies) * 1e3
    return {
        "runs": len(latencies),
        "runs_per_s": len(latencies) / total,
        "add_run_ms_p50": float(np.percentile(lat, 50)),
        "add_run_ms_p99": float(np.percentile(lat, 99)),
        "add_run_ms_max": float(lat.max()),
    }


def part_append(directory: Path, n: int) -> dict[str, Any]:
    path = directory / "append.h5"
    store = CampaignStore.create(path, spec={"campaign": {"budget": n}}, input_names=INPUTS, output_names=OUTPUTS)
    t0 = time.perf_counter()
    latencies = append_runs(store, n, np.random.default_rng(0))
    total = time.perf_counter() - t0
    store.close()
    return {**rate_summary(latencies, total), "fsync_ms_median": fsync_latency(directory) * 1e3}


def _write_then_die(path: str, n: int) -> None:
    """Child: build the journal of ``n`` runs without fsync, then die like a killed driver."""
    os.fsync = lambda fd: None  # bulk build only: durability is not what this child measures
    store = CampaignStore.create(path, spec={"campaign": {"budget": n}}, input_names=INPUTS, output_names=OUTPUTS,
                                 snapshot_interval=1e12)
    append_runs(store, n, np.random.default_rng(1))
    store.save_checkpoint(version=1, n_results=n, surrogate_state=os.urandom(2_000_000), policy_state=b"{}")
    os.kill(os.getpid(), signal.SIGKILL)


def part_big(directory: Path, n: int) -> dict[str, Any]:
    path = directory / "big.h5"
    child = multiprocessing.get_context("fork").Process(target=_write_then_die, args=(str(path), n))
    t0 = time.perf_counter()
    child.start()
    child.join()
    build = time.perf_counter() - t0
    assert child.exitcode == -signal.SIGKILL, child.exitcode
    journal_mb = Path(str(path) + ".journal").stat().st_size / 1e6
    out: dict[str, Any] = {"runs": n, "build_s": build, "journal_mb": journal_mb}

    t0 = time.perf_counter()
    store = CampaignStore.open(path, "a")
    out["resume_after_kill_s"] = time.perf_counter() - t0
    assert len(store.final_runs()) == n
    t0 = time.perf_counter()
    store.close()
    out["close_s"] = time.perf_counter() - t0
    out["file_mb"] = path.stat().st_size / 1e6

    out["open_r_s"] = best_of(lambda: CampaignStore.open(path, "r"))
    reader = CampaignStore.open(path, "r")
    out["arrays_s"] = best_of(reader.arrays)
    fresh = [CampaignStore.open(path, "r") for _ in range(3)]  # runs() caches its records: time first calls
    out["runs_records_s"] = min(best_of(r.runs, repeat=1) for r in fresh)
    out["summary_s"] = best_of(reader.summary)

    def plain_read() -> None:
        with h5py.File(path, "r") as f:
            runs = f["runs"]
            status = runs["status"].asstr()[()]
            keep = runs["final"][()] & (status == "ok")
            runs["X"][()][keep], runs["Y"][()][keep]

    out["plain_h5py_read_s"] = best_of(plain_read)

    def resume_clean() -> None:
        CampaignStore.open(path, "a").close()

    out["open_a_clean_s"] = best_of(resume_clean)
    store = CampaignStore.open(path, "a")
    out["snapshot_s"] = best_of(store.snapshot)
    n_more = min(500, n)
    t0 = time.perf_counter()
    latencies = append_runs(store, n_more, np.random.default_rng(2), batch0=10**6)
    out["append_on_big"] = rate_summary(latencies, time.perf_counter() - t0)
    store.close()
    return out


def machine() -> dict[str, Any]:
    return {
        "host": socket.gethostname(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "h5py": h5py.version.version,
        "hdf5": h5py.version.hdf5_version,
        "cores": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
    }


def markdown(r: dict[str, Any]) -> str:
    a, b = r["append"], r["big"]
    rows = [
        ("append rate, fresh store (runs/s)", f"{a['runs_per_s']:.0f}", f"{a['runs']} runs, each fsync'd"),
        ("add_run latency p50 / p99 (ms)", f"{a['add_run_ms_p50']:.1f} / {a['add_run_ms_p99']:.1f}", ""),
        ("fsync of one small append (ms, median)", f"{a['fsync_ms_median']:.1f}", "the floor of add_run"),
        (f"append rate, {b['runs']:,}-run store (runs/s)", f"{b['append_on_big']['runs_per_s']:.0f}",
         f"p50 {b['append_on_big']['add_run_ms_p50']:.1f} ms, max {b['append_on_big']['add_run_ms_max']:.0f} ms"),
        ("resume after kill, whole journal to replay (s)", f"{b['resume_after_kill_s']:.2f}",
         f"{b['runs']:,} runs, {b['journal_mb']:.0f} MB journal"),
        ("open(mode='a') of a closed store (s)", f"{b['open_a_clean_s']:.2f}", "plus close()"),
        ("open(mode='r') (s)", f"{b['open_r_s']:.2f}", ""),
        ("snapshot(): atomic rewrite of the .h5 (s)", f"{b['snapshot_s']:.2f}", f"{b['file_mb']:.0f} MB file"),
        ("arrays() (s)", f"{b['arrays_s']:.3f}", "columnar, all runs"),
        ("runs() (s)", f"{b['runs_records_s']:.2f}", "RunRecord objects"),
        ("summary() (s)", f"{b['summary_s']:.3f}", ""),
        ("plain h5py read of X, Y, status, final (s)", f"{b['plain_h5py_read_s']:.3f}", "the docs example"),
    ]
    lines = ["| measure | value | note |", "| --- | ---: | --- |"]
    lines += [f"| {m} | {v} | {n} |" for m, v, n in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.store_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=100_000, help="size of the big store (default 100000)")
    parser.add_argument("--appends", type=int, default=1000, help="fsync'd appends timed on a fresh store")
    parser.add_argument("--dir", type=Path, default=None, help="where to put the stores (default: a temp dir)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"results file (default {DEFAULT_JSON})")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")

    started = dt.datetime.now(dt.timezone.utc)
    results: dict[str, Any] = {
        "command": "python -m benchmarks.store_speed" + (" " + " ".join(sys.argv[1:]) if argv is None and sys.argv[1:] else ""),
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
    }
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="store_speed_") as tmp:
        results["directory"] = tmp
        results["append"] = part_append(Path(tmp), args.appends)
        results["big"] = part_big(Path(tmp), args.runs)
    results["total_s"] = (dt.datetime.now(dt.timezone.utc) - started).total_seconds()

    m = results["machine"]
    print(f"store speed, {results['date']}, {m['platform']}, h5py {m['h5py']} / HDF5 {m['hdf5']}, "
          f"{m['cores']} cores (load {m['load_avg_1m']:.1f})")
    print()
    print(markdown(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\nresults written to {args.json} ({results['total_s']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
