"""Surrogate speed: fit and predict times of the ensemble, the GP and MC dropout.

Run from the repository root::

    python -m benchmarks.surrogate_speed [--quick] [--json PATH] [--threads N]

Three parts, all on the Branin function (``d = 2``, ``m = 1``):

(a) The vectorised deep ensemble (``M = 8`` members as batched weights, one
    optimiser) against a Python loop over the same ``M`` members, each an
    ``nn.Sequential`` with its own AdamW. Both run the same architecture, loss
    (beta-NLL), epochs, batch size (128, the automatic choice), learning-rate
    schedule and optimiser settings on the same scaled data, without
    hold-out, so the only difference is batching. Fit at ``n = 1 000`` and
    ``10 000`` in float64 (the default) and float32. Predict (mean and both
    variances, with autograd on ``X`` as acquisition uses it) on 100 points
    (an acquisition-sized call) and on 10 000, by ``DeepEnsemble.predict`` and
    by a loop over its members as ``nn.Sequential`` (same weights; the script
    checks both give the same numbers). Also the end-to-end
    ``DeepEnsemble().fit`` with its automatic schedule.
(b) ``GaussianProcess`` fit / predict at ``n = 100 ... 5 000``.
(c) ``MCDropoutMLP`` fit (same epochs and batch size as (a)) and predict.

Prints markdown tables and writes JSON (default
``benchmarks/results/surrogate_speed.json``; the folder is git-ignored).
Times are wall-clock seconds of one run; predictions the best of several calls
(MLPs: 20 for 100 points, 3 for 10 000; GP: 5 for 100 points, one for 10 000).
``--threads`` sets torch's intra-op threads; on a machine whose cores are busy
with other work, 1 thread avoids OpenMP threads waiting for each other.
"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import json
import logging
import math
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from surrogate_al.surrogates.mlp_training import (
    BETA,
    BatchedMLP,
    TrainingPlan,
    cosine_learning_rate,
    network_losses,
    split_head,
    train_networks,
)
from surrogate_al.surrogates.ensemble import DeepEnsemble
from surrogate_al.surrogates.mc_dropout import MCDropoutMLP

logger = logging.getLogger(__name__)

BRANIN_BOUNDS = np.array([[-5.0, 0.0], [10.0, 15.0]])
DEFAULT_JSON = Path(__file__).resolve().parent / "results" / "surrogate_speed.json"
MEMBERS = 8
HIDDEN = (64, 64)
BATCH = 128
LEARNING_RATE = 1e-2
WEIGHT_DECAY = 1e-4


def branin(X: np.ndarray) -> np.ndarray:
    """Branin on ``n x 2`` points in its usual box; returns ``n x 1``."""
    x1, x2 = X[:, 0], X[:, 1]
    b, c, t = 5.1 / (4 * math.pi**2), 5 / math.pi, 1 / (8 * math.pi)
    return ((x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * np.cos(x1) + 10)[:, None]


def branin_data(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` uniform points in the Branin box and their values."""
    lo, hi = BRANIN_BOUNDS
    X = lo + np.random.default_rng(seed).random((n, 2)) * (hi - lo)
    return X, branin(X)


def scaled(X: np.ndarray, Y: np.ndarray) -> tuple[Tensor, Tensor]:
    """Unit-cube inputs and standardised outputs, as both trainers see them."""
    lo, hi = BRANIN_BOUNDS
    U = torch.as_tensor((X - lo) / (hi - lo))
    Z = torch.as_tensor((Y - Y.mean(0)) / Y.std(0))
    return U, Z


def timed(fn: Callable[..., Any], *args: Any) -> tuple[float, Any]:
    """Seconds taken by ``fn(*args)``, and its result."""
    start = time.perf_counter()
    out = fn(*args)
    return time.perf_counter() - start, out


def best_of(fn: Callable[..., Any], *args: Any, repeats: int = 3) -> float:
    """Fewest seconds of ``repeats`` calls ``fn(*args)``."""
    return min(timed(fn, *args)[0] for _ in range(repeats))


def predict_with_grad(model: Any, X: Tensor) -> Any:
    """``model.predict`` on a fresh copy of ``X`` that requires grad (as acquisition calls it)."""
    return model.predict(X.clone().requires_grad_(True))


# ---------------------------------------------------------------------------------------
# (a) vectorised ensemble vs a loop over members
# ---------------------------------------------------------------------------------------
def vectorised_fit(U: Tensor, Z: Tensor, epochs: int, seed: int) -> BatchedMLP:
    """Train ``MEMBERS`` networks as one batched model (what ``DeepEnsemble.fit`` runs)."""
    generator = torch.Generator().manual_seed(seed)
    net = BatchedMLP(MEMBERS, U.shape[1], HIDDEN, 2 * Z.shape[1], "silu", generator, U.dtype, U.device)
    plan = TrainingPlan(epochs=epochs, batch_size=BATCH, num_validation=0, patience=epochs)
    train_networks(
        net, U, Z, None, plan, learning_rate=LEARNING_RATE, weight_decay=WEIGHT_DECAY, generator=generator
    )
    return net


def member_network(d: int, out: int, dtype: torch.dtype) -> nn.Sequential:
    layers: list[nn.Module] = []
    sizes = [d, *HIDDEN]
    for fan_in, fan_out in itertools.pairwise(sizes):
        layers += [nn.Linear(fan_in, fan_out, dtype=dtype), nn.SiLU()]
    layers.append(nn.Linear(sizes[-1], out, dtype=dtype))
    return nn.Sequential(*layers)


def loop_fit(U: Tensor, Z: Tensor, epochs: int, seed: int) -> list[nn.Sequential]:
    """The baseline: the same ``MEMBERS`` trainings, one after the other."""
    torch.manual_seed(seed)
    n = U.shape[0]
    total_steps = epochs * math.ceil(n / BATCH)
    members = []
    for _ in range(MEMBERS):
        net = member_network(U.shape[1], 2 * Z.shape[1], U.dtype)
        optimizer = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        step = 0
        for _ in range(epochs):
            for idx in torch.randperm(n).split(BATCH):
                for group in optimizer.param_groups:
                    group["lr"] = cosine_learning_rate(step, total_steps, LEARNING_RATE)
                loss = network_losses(net(U[idx]).unsqueeze(0), Z[idx].unsqueeze(0), None, None, BETA).sum()
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                step += 1
        for p in net.parameters():
            p.requires_grad_(False)
        members.append(net)
    return members


def moments(outputs: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """``K x n x 2m`` outputs -> mean, epistemic and aleatoric variance (``n x m``)."""
    means, variances = split_head(outputs)
    return means.mean(0), means.var(0, unbiased=False), variances.mean(0)


def train_rmse(outputs: Tensor, Z: Tensor) -> float:
    """RMSE of the ensemble mean on the (standardised) training data."""
    return float(((moments(outputs)[0] - Z) ** 2).mean().sqrt())


def predict_times(model: DeepEnsemble, X: Tensor, repeats: int) -> tuple[float, float]:
    """Best-of-``repeats`` seconds of ``model.predict(X)`` and of the same prediction by a member loop.

    Both take ``X`` with ``requires_grad`` (acquisition differentiates through
    predict) and return mean and both variances in output units; the loop
    evaluates ``model.member(i)``, the same weights as plain ``nn.Sequential``.
    """
    members = [model.member(i).requires_grad_(False) for i in range(model.num_members)]
    scaler, standardizer = model.scaler_, model.standardizer_

    def vectorised() -> Tensor:
        return model.predict(X.clone().requires_grad_(True)).epistemic_var

    def loop() -> Tensor:
        U = scaler.transform(X.clone().requires_grad_(True))
        epistemic = moments(torch.stack([member(U) for member in members]))[1]
        return standardizer.untransform_var(epistemic)

    # Same numbers, or the timing compares different things (float32 variances of
    # nearly equal member means differ in the last digits between the two orders of summation).
    v, l = vectorised().detach(), loop().detach()
    tol = 1e-3 if X.dtype == torch.float32 else 1e-7
    torch.testing.assert_close(v, l, rtol=tol, atol=tol * float(v.abs().max()))
    return best_of(vectorised, repeats=repeats), best_of(loop, repeats=repeats)


def warm_up() -> None:
    """First calls pay one-off costs (kernel selection, allocator growth); keep them out of the timings."""
    X, Y = branin_data(300, seed=1)
    for dtype in (torch.float64, torch.float32):
        U, Z = (t.to(dtype) for t in scaled(X, Y))
        vectorised_fit(U, Z, 2, seed=0)
        loop_fit(U, Z, 1, seed=0)


def part_ensemble(configs: list[tuple[int, torch.dtype, int]], n_predict: int) -> list[dict[str, Any]]:
    """Fit and predict times for each ``(n, dtype, epochs)``."""
    warm_up()
    rows = []
    Xp = torch.as_tensor(branin_data(n_predict, seed=99)[0])
    for n, dtype, epochs in configs:
        logger.info("ensemble: n=%d, %s", n, dtype)
        X, Y = branin_data(n, seed=n)
        U, Z = (t.to(dtype) for t in scaled(X, Y))
        t_vec, net = timed(vectorised_fit, U, Z, epochs, 0)
        t_loop, members = timed(loop_fit, U, Z, epochs, 0)
        with torch.no_grad():
            rmse_vec = train_rmse(net(U), Z)
            rmse_loop = train_rmse(torch.stack([m(U) for m in members]), Z)

        auto = DeepEnsemble(num_members=MEMBERS, hidden_layers=HIDDEN, device="cpu", dtype=dtype, bounds=BRANIN_BOUNDS)
        t_auto, _ = timed(auto.fit, X, Y)
        small_vec, small_loop = predict_times(auto, Xp[:100].to(dtype), repeats=20)
        large_vec, large_loop = predict_times(auto, Xp.to(dtype), repeats=3)
        row = {
            "n": n,
            "dtype": str(dtype).removeprefix("torch."),
            "epochs": epochs,
            "steps_per_member": epochs * math.ceil(n / BATCH),
            "fit_vectorised_s": t_vec,
            "fit_loop_s": t_loop,
            "fit_speedup": t_loop / t_vec,
            "train_rmse_vectorised": rmse_vec,
            "train_rmse_loop": rmse_loop,
            "predict_100_vectorised_s": small_vec,
            "predict_100_loop_s": small_loop,
            "predict_100_speedup": small_loop / small_vec,
            "n_predict": n_predict,
            "predict_large_vectorised_s": large_vec,
            "predict_large_loop_s": large_loop,
            "predict_large_speedup": large_loop / large_vec,
            "auto_fit_s": t_auto,
            "auto_epochs": auto.training_report_.epochs,
            "auto_steps": auto.training_report_.steps,
        }
        rows.append(row)
        logger.info("ensemble: %s", row)
    return rows


# ---------------------------------------------------------------------------------------
# (b) GP, (c) MC dropout
# ---------------------------------------------------------------------------------------
def part_gp(sizes: list[int], n_predict: int) -> dict[str, Any]:
    """Fit and predict times of the exact GP at each training-set size.

    Predict is timed on 100 points (best of 5) and once on ``n_predict``.
    """
    try:
        from surrogate_al.surrogates.gp import GaussianProcess
    except ImportError as exc:
        return {"available": False, "reason": f"surrogate_al.surrogates.gp could not be imported: {exc}", "rows": []}
    rows = []
    Xp = torch.as_tensor(branin_data(n_predict, seed=99)[0])
    for n in sizes:
        logger.info("gp: fitting n=%d", n)
        X, Y = branin_data(n, seed=n)
        gp = GaussianProcess(bounds=torch.as_tensor(BRANIN_BOUNDS), device="cpu")
        t_fit, _ = timed(gp.fit, torch.as_tensor(X), torch.as_tensor(Y))
        rows.append(
            {
                "n": n,
                "fit_s": t_fit,
                "fit_status": gp.fit_status_,
                "predict_100_s": best_of(predict_with_grad, gp, Xp[:100], repeats=5),
                "n_predict": n_predict,
                "predict_large_s": timed(predict_with_grad, gp, Xp)[0],
            }
        )
        logger.info("gp: %s", rows[-1])
    return {"available": True, "rows": rows}


def part_mc_dropout(configs: list[tuple[int, int]], n_predict: int) -> list[dict[str, Any]]:
    """Fit (fixed epochs) and predict times for each ``(n, epochs)``, float64."""
    rows = []
    Xp = torch.as_tensor(branin_data(n_predict, seed=99)[0])
    for n, epochs in configs:
        logger.info("mc dropout: n=%d", n)
        X, Y = branin_data(n, seed=n)
        model = MCDropoutMLP(
            hidden_layers=HIDDEN, max_epochs=epochs, batch_size=BATCH, device="cpu", bounds=BRANIN_BOUNDS
        )
        t_fit, _ = timed(model.fit, X, Y)
        rows.append(
            {
                "n": n,
                "epochs": epochs,
                "num_passes": model.num_passes,
                "fit_s": t_fit,
                "predict_100_s": best_of(predict_with_grad, model, Xp[:100], repeats=20),
                "n_predict": n_predict,
                "predict_large_s": best_of(predict_with_grad, model, Xp),
            }
        )
        logger.info("mc dropout: %s", rows[-1])
    return rows


# ---------------------------------------------------------------------------------------
# report
# ---------------------------------------------------------------------------------------
def machine() -> dict[str, Any]:
    model = platform.processor() or "unknown"
    try:
        lscpu = subprocess.run(["lscpu"], capture_output=True, text=True, check=True).stdout
        model = next(line.split(":", 1)[1].strip() for line in lscpu.splitlines() if line.startswith("Model name"))
    except (OSError, subprocess.CalledProcessError, StopIteration):
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
    }


def markdown(results: dict[str, Any]) -> str:
    """The results as markdown tables (parts that were not run are left out)."""
    lines: list[str] = []
    if "ensemble" in results:
        lines += _ensemble_table(results["ensemble"])
    if "gp" in results:
        lines += _gp_table(results["gp"])
    if "mc_dropout" in results:
        lines += _mc_dropout_table(results["mc_dropout"])
    return "\n".join(lines).strip()


def _ensemble_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"(a) Deep ensemble, M = {MEMBERS}, hidden {HIDDEN}, batch {BATCH}: vectorised vs a loop over members",
        "",
        (
            "| n | dtype | epochs | fit vectorised (s) | fit loop (s) | fit speed-up | train RMSE vec / loop "
            f"| predict 100 pts vec / loop (ms) | speed-up | predict {rows[0]['n_predict']} pts vec / loop (s) "
            "| speed-up | auto fit (s, steps) |"
        ),
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r['n']} | {r['dtype']} | {r['epochs']} | {r['fit_vectorised_s']:.2f} | {r['fit_loop_s']:.2f} | "
            f"{r['fit_speedup']:.1f}x | {r['train_rmse_vectorised']:.3f} / {r['train_rmse_loop']:.3f} | "
            f"{1e3 * r['predict_100_vectorised_s']:.2f} / {1e3 * r['predict_100_loop_s']:.2f} | "
            f"{r['predict_100_speedup']:.1f}x | "
            f"{r['predict_large_vectorised_s']:.3f} / {r['predict_large_loop_s']:.3f} | "
            f"{r['predict_large_speedup']:.1f}x | {r['auto_fit_s']:.1f} ({r['auto_steps']}) |"
        )
    return [*lines, ""]


def _gp_table(gp: dict[str, Any]) -> list[str]:
    lines = ["(b) GaussianProcess (exact, Matern-5/2 ARD, learned noise, float64)", ""]
    if not gp["available"]:
        return [*lines, f"not run: {gp['reason']}", ""]
    n_predict = gp["rows"][0]["n_predict"] if gp["rows"] else 0
    lines += [
        f"| n | fit (s) | predict 100 pts (ms) | predict {n_predict} pts (s) |",
        "| ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['n']} | {r['fit_s']:.2f} | {1e3 * r['predict_100_s']:.2f} | {r['predict_large_s']:.2f} |"
        for r in gp["rows"]
    ]
    return [*lines, ""]


def _mc_dropout_table(rows: list[dict[str, Any]]) -> list[str]:
    n_predict = rows[0]["n_predict"] if rows else 0
    lines = [
        f"(c) MCDropoutMLP, hidden {HIDDEN}, batch {BATCH}, float64",
        "",
        f"| n | epochs | passes | fit (s) | predict 100 pts (ms) | predict {n_predict} pts (s) |",
        "| ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    lines += [
        f"| {r['n']} | {r['epochs']} | {r['num_passes']} | {r['fit_s']:.2f} | {1e3 * r['predict_100_s']:.2f} "
        f"| {r['predict_large_s']:.3f} |"
        for r in rows
    ]
    return [*lines, ""]


PARTS = ("ensemble", "gp", "mc_dropout")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.surrogate_speed", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small sizes only (a smoke run, well under a minute)")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help=f"where to write results (default {DEFAULT_JSON})")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's choice)")
    parser.add_argument(
        "--parts", nargs="+", choices=PARTS, default=list(PARTS), help="which parts to run (default: all)"
    )
    parser.add_argument(
        "--gp-sizes",
        nargs="+",
        type=int,
        default=None,
        help="GP training-set sizes (default 100 500 1000 2000; 5000 takes ~10 minutes on 2 busy cores)",
    )
    args = parser.parse_args(argv)
    # Progress on stderr (one line per measurement); the tables go to stdout.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logger.setLevel(logging.INFO)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    torch.set_default_dtype(torch.float64)

    f64, f32 = torch.float64, torch.float32
    if args.quick:
        configs, n_predict, gp_sizes = [(1000, f64, 10)], 2000, [100, 500]
    else:
        # About 700 steps per member at each size (1, 8 and 79 batches of <= 128 per epoch);
        # n = 100 is the full-batch regime of an early campaign.
        configs = [(100, f64, 700), (1000, f64, 90), (10_000, f64, 9), (1000, f32, 90), (10_000, f32, 9)]
        n_predict, gp_sizes = 10_000, [100, 500, 1000, 2000]
    gp_sizes = args.gp_sizes or gp_sizes
    mc_configs = [(n, epochs) for n, dtype, epochs in configs if dtype == f64 and n >= 1000]

    started = dt.datetime.now(dt.timezone.utc)
    results: dict[str, Any] = {
        "command": " ".join(["python -m benchmarks.surrogate_speed", *(sys.argv[1:] if argv is None else argv)]),
        "date": started.isoformat(timespec="seconds"),
        "machine": machine(),
        "load_average_1min_at_start": os.getloadavg()[0],
        "quick": args.quick,
    }
    if "ensemble" in args.parts:
        results["ensemble"] = part_ensemble(configs, n_predict)
    if "gp" in args.parts:
        results["gp"] = part_gp(gp_sizes, n_predict)
    if "mc_dropout" in args.parts:
        results["mc_dropout"] = part_mc_dropout(mc_configs, n_predict)
    results["total_s"] = (dt.datetime.now(dt.timezone.utc) - started).total_seconds()

    m = results["machine"]
    print(
        f"surrogate speed, {results['date']}, {m['cpu']} ({m['cores']} cores, torch {m['torch']}, "
        f"{m['torch_threads']} threads, load average {results['load_average_1min_at_start']:.1f} at start)"
    )
    print()
    print(markdown(results))
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(results, indent=2))
    print(f"\nresults written to {args.json} ({results['total_s']:.0f} s in all)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
