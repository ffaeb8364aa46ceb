"""How long does the acquisition take to propose a batch?

Measures, on the machine it runs on:

* **synthesis**: one call of the default policy's ``propose`` (greedy
  submodular batch, each of the q = 8 points synthesised by multi-start
  L-BFGS-B: 1024 raw Sobol samples, 8 restarts) with an exact GP fitted on
  n = 500 points, in d = 2, 6 and 10 (target: under 10 s for d = 10 on a
  2-core machine);
* **pool**: one ``propose`` in pool mode (lazy greedy, q = 8) over 1 000 and
  100 000 random candidates, with the same GP in d = 2 and with a deep
  ensemble in d = 2.

The surrogate's fit is timed separately and not included. Every surrogate
call the acquisition makes is counted, so the table also shows the mean cost
of one call (for the GP that cost, not the acquisition's own arithmetic,
dominates).

Usage::

    python -m benchmarks.acquisition_speed [--json PATH] [--dims 2 6 10] [--pools 1000 100000] [--threads N]

Prints a markdown table and writes the figures as JSON (default
``benchmarks/results/acquisition_speed.json``, git-ignored).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from surrogate_al.acquisition import sobol_points
from surrogate_al.data import Dataset
from surrogate_al.policies import Policy
from surrogate_al.surrogates import DeepEnsemble, GaussianProcess
from surrogate_al.surrogates.base import Prediction

DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "acquisition_speed.json"


class CountingSurrogate:
    """A surrogate that delegates to another and counts the calls acquisition makes."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.calls = {"predict": 0, "joint_epistemic_covariance": 0, "epistemic_cross_covariance": 0}
        self.seconds = 0.0

    def fit(self, X: Tensor, Y: Tensor, Yvar: Tensor | None = None) -> CountingSurrogate:
        self.inner.fit(X, Y, Yvar)
        return self

    def predict(self, X: Tensor) -> Prediction:
        self.calls["predict"] += 1
        start = time.perf_counter()
        try:
            return self.inner.predict(X)
        finally:
            self.seconds += time.perf_counter() - start

    def joint_epistemic_covariance(self, X: Tensor) -> Tensor:
        self.calls["joint_epistemic_covariance"] += 1
        start = time.perf_counter()
        try:
            return self.inner.joint_epistemic_covariance(X)
        finally:
            self.seconds += time.perf_counter() - start

    def epistemic_cross_covariance(self, Z: Tensor, X: Tensor) -> tuple[Tensor, Tensor]:
        # Passed on, or batch acquisition would take the slower joint-covariance route.
        self.calls["epistemic_cross_covariance"] += 1
        start = time.perf_counter()
        try:
            return self.inner.epistemic_cross_covariance(Z, X)
        finally:
            self.seconds += time.perf_counter() - start

    def state_dict(self) -> dict[str, Any]:
        return self.inner.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> CountingSurrogate:
        self.inner.load_state_dict(state)
        return self

    @property
    def num_outputs(self) -> int:
        return self.inner.num_outputs

    def reset(self) -> None:
        self.calls = {key: 0 for key in self.calls}
        self.seconds = 0.0


def test_function(X: np.ndarray) -> np.ndarray:
    """A smooth, anisotropic response (``n x 1``)."""
    return np.sin(3.0 * X).sum(axis=1, keepdims=True) + X[:, :1] * X[:, 1:2]


def unit_bounds(d: int) -> Tensor:
    return torch.stack([torch.zeros(d), torch.ones(d)]).double()


def fitted(kind: str, d: int, n: int) -> tuple[CountingSurrogate, Dataset, float]:
    X = sobol_points(n, d, seed=0).numpy()
    data = Dataset(X=X, Y=test_function(X))
    if kind == "gp":
        model: Any = GaussianProcess(bounds=unit_bounds(d), seed=0, device="cpu")
    else:
        model = DeepEnsemble(num_members=8, max_epochs=200, seed=0, bounds=unit_bounds(d), device="cpu")
    surrogate = CountingSurrogate(model)
    start = time.perf_counter()
    surrogate.fit(torch.as_tensor(data.X), torch.as_tensor(data.Y))
    return surrogate, data, time.perf_counter() - start


def time_propose(policy: Policy, surrogate: CountingSurrogate, data: Dataset, q: int) -> dict[str, Any]:
    surrogate.reset()
    start = time.perf_counter()
    proposal = policy.propose(data, q)
    seconds = time.perf_counter() - start
    calls = sum(surrogate.calls.values())
    return {
        "seconds": seconds,
        "surrogate_calls": calls,
        "surrogate_seconds": surrogate.seconds,
        "seconds_per_call": surrogate.seconds / max(calls, 1),
        "method": proposal.method,
        "min_pair_distance": float(
            np.min(np.linalg.norm(proposal.X[:, None] - proposal.X[None], axis=-1) + 10 * np.eye(q))
        ),
    }


def machine() -> dict[str, Any]:
    info: dict[str, Any] = {
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
        "load_average_1_5_15": list(os.getloadavg()),
    }
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        for line in lscpu.splitlines():
            key, _, value = line.partition(":")
            if key.strip() in ("Model name", "CPU(s)", "Thread(s) per core", "Core(s) per socket"):
                info[key.strip()] = value.strip()
    except (OSError, subprocess.CalledProcessError):
        info["lscpu"] = "unavailable"
    return info


def run(dims: list[int], pools: list[int], n: int, q: int) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    for d in dims:
        surrogate, data, fit_seconds = fitted("gp", d, n)
        result = time_propose(Policy(surrogate, seed=0), surrogate, data, q)
        rows.append({"case": "synthesis", "surrogate": "gp", "d": d, "n": n, "q": q, "candidates": None,
                     "fit_seconds": fit_seconds, **result})
        print(f"synthesis gp d={d}: {result['seconds']:.2f} s", flush=True)
    for kind in ("gp", "ensemble"):
        surrogate, data, fit_seconds = fitted(kind, 2, n)
        for size in pools:
            candidates = np.random.default_rng(size).random((size, 2))
            policy = Policy(surrogate, mode="pool", candidates=candidates, seed=0)
            result = time_propose(policy, surrogate, data, q)
            rows.append({"case": "pool", "surrogate": kind, "d": 2, "n": n, "q": q, "candidates": size,
                         "fit_seconds": fit_seconds, **result})
            print(f"pool {kind} N={size}: {result['seconds']:.2f} s", flush=True)
    return {"rows": rows}


def markdown(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| case | surrogate | d | n | candidates | q | propose (s) | surrogate calls | s / call | min pair distance |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        size = "-" if r["candidates"] is None else f"{r['candidates']:,}"
        lines.append(
            f"| {r['case']} | {r['surrogate']} | {r['d']} | {r['n']} | {size} | {r['q']} | {r['seconds']:.2f} | "
            f"{r['surrogate_calls']} | {r['seconds_per_call']:.3f} | {r['min_pair_distance']:.3f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the figures")
    parser.add_argument("--dims", type=int, nargs="+", default=[2, 6, 10], help="input dimensions (synthesis)")
    parser.add_argument("--pools", type=int, nargs="+", default=[1000, 100_000], help="pool sizes")
    parser.add_argument("--n", type=int, default=500, help="training points")
    parser.add_argument("--q", type=int, default=8, help="batch size")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    started = dt.datetime.now(dt.timezone.utc)
    report = {"benchmark": "acquisition_speed", "started_utc": started.isoformat(timespec="seconds"),
              "machine": machine(), **run(args.dims, args.pools, args.n, args.q)}
    report["machine"]["load_average_after"] = list(os.getloadavg())
    table = markdown(report["rows"])
    print()
    print(table)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
