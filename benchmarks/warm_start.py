"""Warm-started deep-ensemble refits against fresh fits along a campaign's growing data.

    python -m benchmarks.warm_start [--quick] [--problems ...] [--seeds N] [--json PATH]

A campaign refits its surrogate after every batch. ``DeepEnsemble(warm_start=True)``
starts each refit from the previous weights with 30 % of the automatic step
budget; this measures what that costs in test error. For each problem and seed
the first n points of one scrambled Sobol design (n = 20, 28, 40, 56, 80, the
label-efficiency ladder) are fitted by

* ``warm``: one ensemble with ``warm_start=True`` refitted at each n (what a
  campaign did until the default became False),
* ``warm-full``: the same with the full step budget on every refit
  (``max_epochs`` = the cold schedule's, full batch below 128 points),
* ``fresh``: a new ensemble (the defaults) at each n,

and each is scored by test NRMSE on the label-efficiency benchmark's cached
test set (RMSE / std of the test outputs, mean over outputs). Prints a markdown
table (median over seeds, and the median of per-seed ratios to ``fresh``) and
writes JSON.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np

RUNS = (20, 28, 40, 56, 80)
VARIANTS = ("warm", "warm-full", "fresh")


def curves(problem: str, seed: int) -> dict[str, list[float]]:
    """Test NRMSE at each of :data:`RUNS` for each of :data:`VARIANTS`, one seed."""
    import torch

    from benchmarks.label_efficiency import _load, _unit_bounds, evaluate, score_on_test, test_set
    from surrogate_al.surrogates import DeepEnsemble
    from surrogate_al.surrogates.mlp_training import plan_training

    torch.set_num_threads(1)
    space = _load(problem).INPUTS
    test = test_set(problem, 1000)
    # The label-efficiency benchmark's Sobol design for this seed.
    U = space.design_unit("sobol", max(RUNS), seed=1000 * seed + 17)
    Y, ok = evaluate(problem, U)
    bounds = _unit_bounds(space.dim)
    full_budget = plan_training(max(RUNS), None, None, warm=False).epochs
    warm = DeepEnsemble(seed=seed, bounds=bounds, warm_start=True)
    warm_full = DeepEnsemble(seed=seed, bounds=bounds, warm_start=True, max_epochs=full_budget)
    out: dict[str, list[float]] = {v: [] for v in VARIANTS}
    for n in RUNS:
        keep = ok[:n]
        X, T = torch.as_tensor(U[:n][keep]), torch.as_tensor(Y[:n][keep])
        out["warm"].append(score_on_test(warm.fit(X, T), test))
        out["warm-full"].append(score_on_test(warm_full.fit(X, T), test))
        out["fresh"].append(score_on_test(DeepEnsemble(seed=seed, bounds=bounds).fit(X, T), test))
    return out


def markdown(results: dict[str, dict[int, dict[str, list[float]]]]) -> str:
    """Median NRMSE over seeds per variant, and median per-seed ratio to ``fresh``."""
    lines = ["| problem | seeds | variant | " + " | ".join(f"n = {n}" for n in RUNS) + " | ratio to fresh at "
             + "/".join(str(n) for n in RUNS) + " |",
             "|---|---:|---|" + "---:|" * len(RUNS) + "---|"]
    for problem, by_seed in results.items():
        for variant in VARIANTS:
            values = np.array([by_seed[s][variant] for s in by_seed])
            fresh = np.array([by_seed[s]["fresh"] for s in by_seed])
            ratio = np.median(values / fresh, axis=0)
            lines.append(f"| {problem} | {len(by_seed)} | {variant} | " + " | ".join(f"{v:.4f}" for v in np.median(values, axis=0))
                         + " | " + "/".join(f"{r:.2f}" for r in ratio) + " |")
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="branin only, 2 seeds")
    parser.add_argument("--problems", nargs="+", default=None, help="default: branin friedman")
    parser.add_argument("--seeds", type=int, default=None, help="default: 5 (2 with --quick)")
    parser.add_argument("--json", type=Path, default=Path("benchmarks/results/warm_start.json"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    problems = args.problems or (["branin"] if args.quick else ["branin", "friedman"])
    seeds = args.seeds or (2 if args.quick else 5)
    t0 = time.perf_counter()
    results = {p: {s: curves(p, s) for s in range(seeds)} for p in problems}
    text = markdown(results)
    print(text)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"runs": RUNS, "results": results, "seconds": time.perf_counter() - t0,
                                     "date": time.strftime("%Y-%m-%d")}, indent=1))
    print(f"{time.perf_counter() - t0:.0f} s; JSON in {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
