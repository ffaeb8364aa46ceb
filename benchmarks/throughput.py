"""Loop throughput: worker utilisation, dispatch overhead and proposal latency.

    python -m benchmarks.throughput [--quick] [--surrogates gp auto] [--json PATH]

1. Campaigns on a LocalCluster of 2 workers running ``simulators.sleepy``
   (log-normal run times, median 0.5 s, 10x spread), asynchronous and
   synchronous mode, with the GP and (full run) with ``auto``, the default
   surrogate, whose rounds are dearer (a cross-validated choice between the
   GP and the deep ensemble when the runs have grown by half, and the
   ensemble's fits once it is chosen): worker utilisation after the initial
   design (busy time / (workers x wall time)), wall time, and proposal latency
   (fit + acquisition) per proposal, from the ``proposal_seconds`` metric the
   campaign stores.
2. Per-run overhead of the whole loop (dispatch, store with an fsync per
   record, bookkeeping) on near-zero-cost runs with the ``sobol`` policy,
   against raw ``client.submit`` + ``as_completed`` of the same function.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

WORKFLOW = """
[campaign]
name = "{name}"
budget = {budget}
concurrency = 2
mode = "{mode}"
initial_design = {{ size = 8, kind = "sobol" }}
store = "{name}.h5"

[simulator]
kind = "python"
function = "simulators.sleepy:run"
fixed_inputs = {{ median = {median}, spread = 10.0 }}
outputs = ["y"]

[simulator.inputs]
x1 = {{ low = 0.0, high = 1.0 }}
x2 = {{ low = 0.0, high = 1.0 }}

[surrogate]
kind = "{surrogate}"

[acquisition]
policy = "{policy}"

[cluster]
kind = "local"
workers = 2
"""


def utilisation_after_initial(store_path: Path) -> tuple[float, float]:
    """Worker utilisation after the initial design: until the last submission, and until the last finish."""
    from surrogate_al.store import CampaignStore

    with CampaignStore.open(store_path) as store:
        source = {p.proposal_id: p.source for p in store.proposals()}
        runs = store.runs()
    start = np.array([r.start_time for r in runs])
    finish = np.array([r.finish_time for r in runs])
    later = np.array([source[r.proposal_id] != "initial" for r in runs])
    # Until the last run is submitted there is always work to hand out; after it, a worker
    # idles while the other finishes the last (possibly 10x longer) run: that drain is
    # inherent to a finite budget and reported apart.
    submitted_last = max(r.submit_time for r in runs)
    t0, t1 = start[later].min(), submitted_last
    workers = len({r.worker for r in runs})

    def utilisation(end: float) -> float:
        busy = np.clip(np.minimum(finish, end) - np.maximum(start, t0), 0.0, None).sum()
        return float(busy / (workers * (end - t0)))

    return utilisation(t1), utilisation(float(finish.max()))


def run_campaign(tmp: Path, name: str, budget: int, mode: str, policy: str, median: float,
                 surrogate: str = "gp") -> dict[str, Any]:
    from surrogate_al.campaign import Campaign
    from surrogate_al.config import load_workflow

    path = tmp / f"{name}.toml"
    path.write_text(WORKFLOW.format(name=name, budget=budget, mode=mode, policy=policy, median=median,
                                    surrogate=surrogate))
    t = time.perf_counter()
    campaign = Campaign.create(load_workflow(path))
    try:
        campaign.run()
        metrics = campaign.store.metrics()
    finally:
        campaign.close()
    wall = time.perf_counter() - t
    latency = [v for _, k, v in metrics if k == "proposal_seconds"]
    util, util_drain = utilisation_after_initial(tmp / f"{name}.h5")
    return {
        "mode": mode,
        "policy": policy,
        "surrogate": surrogate,
        "runs": budget,
        "wall_s": wall,
        "utilisation_after_initial": util,
        "utilisation_including_final_drain": util_drain,
        "proposal_latency_median_s": statistics.median(latency) if latency else float("nan"),
        "proposal_latency_p90_s": float(np.percentile(latency, 90)) if latency else float("nan"),
    }


def _noop(i: int) -> int:
    return i


def raw_submit_overhead(n: int) -> float:
    """Seconds per task for ``client.submit`` + ``as_completed`` of a no-op on 2 local workers."""
    from distributed import Client, LocalCluster, as_completed

    with LocalCluster(n_workers=2, threads_per_worker=1, dashboard_address=None, host="127.0.0.1") as cluster:
        with Client(cluster) as client:
            client.submit(_noop, -1, pure=False).result()  # warm up
            t = time.perf_counter()
            futures = [client.submit(_noop, i, pure=False) for i in range(2)]
            done = as_completed(futures)
            submitted = 2
            for _ in done:
                if submitted < n:
                    done.add(client.submit(_noop, submitted, pure=False))
                    submitted += 1
            return (time.perf_counter() - t) / n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="fewer runs (minutes instead of tens of minutes)")
    parser.add_argument("--surrogates", nargs="+", choices=("gp", "auto"), default=None,
                        help="surrogates of the utilisation campaigns (default: gp with --quick, gp and auto without)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/throughput.json"))
    args = parser.parse_args()
    surrogates = args.surrogates or (["gp"] if args.quick else ["gp", "auto"])
    budget = 60 if args.quick else 200
    cheap = 300 if args.quick else 2000

    import logging

    logging.basicConfig(level=logging.WARNING)
    import distributed  # noqa: F401 - installs its log levels, silenced next

    logging.getLogger("distributed").setLevel(logging.ERROR)

    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "budget": budget, "campaigns": []}
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for surrogate in surrogates:
            for mode in ("async", "sync"):
                r = run_campaign(tmp, f"sleepy_{surrogate}_{mode}", budget, mode, "default", 0.5, surrogate)
                results["campaigns"].append(r)
                print(f"{surrogate} {mode}: utilisation {r['utilisation_after_initial']:.1%}, wall {r['wall_s']:.1f} s, "
                      f"proposal latency median {r['proposal_latency_median_s']:.2f} s", flush=True)
        t = time.perf_counter()
        run_campaign(tmp, "cheap", cheap, "async", "sobol", 1e-4)
        loop = (time.perf_counter() - t) / cheap
    raw = raw_submit_overhead(cheap)
    results["overhead"] = {"runs": cheap, "loop_s_per_run": loop, "raw_submit_s_per_task": raw}

    print()
    print("| surrogate | mode | runs | utilisation after initial design (to last submission) | same, with the final drain | wall (s) | proposal latency median / p90 (s) |")
    print("|---|---|---|---|---|---|---|")
    for r in results["campaigns"]:
        print(f"| {r['surrogate']} | {r['mode']} | {r['runs']} | {r['utilisation_after_initial']:.1%} | "
              f"{r['utilisation_including_final_drain']:.1%} | {r['wall_s']:.1f} | "
              f"{r['proposal_latency_median_s']:.2f} / {r['proposal_latency_p90_s']:.2f} |")
    print()
    print(f"| per-run overhead, {cheap} near-zero-cost runs | seconds |")
    print("|---|---|")
    print(f"| whole loop (sobol policy, store fsync per record) | {loop * 1e3:.1f} ms |")
    print(f"| raw client.submit + as_completed | {raw * 1e3:.1f} ms |")
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
