"""What a campaign learned, for people: PNG plots, a markdown summary, predictions and exports.

Everything here reads a campaign store (read-only, so it works while a driver
is still writing) and, for model plots and predictions, rebuilds the last
checkpointed surrogate from the stored spec.
"""

from __future__ import annotations

import csv
import io
import logging
import math
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from surrogate_al.errors import ConfigError, StoreError

if TYPE_CHECKING:
    from surrogate_al.config import WorkflowSpec
    from surrogate_al.space import InputSpace
    from surrogate_al.store import CampaignStore
    from surrogate_al.surrogates.base import Surrogate

__all__ = ["write_report", "predict_csv", "export_runs", "worker_utilisation"]

logger = logging.getLogger(__name__)

#: Inputs shown in pairwise and slice plots (more would be unreadable).
MAX_PLOTTED_INPUTS = 6


def worker_utilisation(start: NDArray[np.float64], finish: NDArray[np.float64], worker: NDArray[Any]) -> float:
    """Busy time over (workers x span from first start to last finish); NaN without runs.

    Args:
        start: ``n`` run start times (unix seconds).
        finish: ``n`` run finish times.
        worker: ``n`` worker names.
    """
    ok = np.isfinite(start) & np.isfinite(finish)
    if not ok.any():
        return math.nan
    span = float(finish[ok].max() - start[ok].min())
    n_workers = len(set(np.asarray(worker)[ok].tolist()))
    if span <= 0 or n_workers == 0:
        return math.nan
    return float(np.sum(finish[ok] - start[ok]) / (n_workers * span))


def _final_arrays(store: CampaignStore) -> dict[str, NDArray[Any]]:
    """The store's columns, restricted to the attempt that settled each proposal."""
    arrays = store.arrays()
    mask = np.asarray(arrays["final"], dtype=bool)
    return {k: np.asarray(v)[mask] for k, v in arrays.items()}


def _figure() -> ModuleType:
    """``matplotlib.pyplot`` on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")  # no display on clusters
    import matplotlib.pyplot as plt

    return plt


def _learning_curve(store: CampaignStore, out: Path) -> Path | None:
    """``learning_curve.png``: each NRMSE metric against successful runs; None without such metrics."""
    metrics = [m for m in store.metrics() if m[1].endswith("nrmse")]
    if not metrics:
        return None
    plt = _figure()
    fig, ax = plt.subplots(figsize=(6, 4))
    for name in sorted({m[1] for m in metrics}):
        pts = [(n, v) for n, k, v in metrics if k == name]
        ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o", ms=3, label=name)
    ax.set_xlabel("successful runs")
    ax.set_ylabel("error (NRMSE)")
    ax.set_yscale("log")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    ax.set_title("learning curve")
    path = out / "learning_curve.png"
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _sample_map(store: CampaignStore, final: dict[str, NDArray[Any]], out: Path) -> Path | None:
    """``samples.png``: pairwise scatter of the settled runs' inputs, coloured by run order; None without runs."""
    X = final["X"]
    if len(X) == 0:
        return None
    names = store.input_names[:MAX_PLOTTED_INPUTS]
    k = len(names)
    ok = final["status"] == "ok"
    order = np.arange(len(X))
    plt = _figure()
    fig, axes = plt.subplots(k, k, figsize=(2.2 * k + 1, 2.2 * k), squeeze=False)
    for i in range(k):
        for j in range(k):
            ax = axes[i][j]
            if i == j:
                ax.hist(X[:, i], bins=15, color="0.6")
            else:
                sc = ax.scatter(X[ok, j], X[ok, i], c=order[ok], cmap="viridis", s=10)
                ax.scatter(X[~ok, j], X[~ok, i], marker="x", color="red", s=18, label="failed")
            if i == k - 1:
                ax.set_xlabel(names[j])
            if j == 0:
                ax.set_ylabel(names[i])
    if k > 1:
        fig.colorbar(sc, ax=axes, label="run order", shrink=0.8)
    fig.suptitle("sample locations (red x: failed)")
    path = out / "samples.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def _predict_physical(
    surrogate: Surrogate, space: InputSpace, X: NDArray[np.float64]
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    """Mean, epistemic and aleatoric variance (each ``n x m``) at ``n x d`` points in the scientist's units."""
    import torch

    with torch.no_grad():
        pred = surrogate.predict(torch.as_tensor(space.to_unit(X)))
    to_np = lambda t: t.detach().cpu().double().numpy()  # noqa: E731 - local shorthand
    return to_np(pred.mean), to_np(pred.epistemic_var), to_np(pred.aleatoric_var)


def _slices(spec: WorkflowSpec, surrogate: Surrogate, final: dict[str, NDArray[Any]], out: Path) -> list[Path]:
    """1-D slices through the best-sampled centre, and a 2-D map of the first two inputs."""
    space = spec.space()
    outputs = list(spec.simulator.outputs)
    plt = _figure()
    paths = []
    k = min(space.dim, MAX_PLOTTED_INPUTS)
    fig, axes = plt.subplots(len(outputs), k, figsize=(3 * k + 1, 2.6 * len(outputs)), squeeze=False)
    grid = np.linspace(0.0, 1.0, 101)
    for j in range(k):
        U = np.full((grid.size, space.dim), 0.5)
        U[:, j] = grid
        X = space.from_unit(U)
        mean, epi, _ = _predict_physical(surrogate, space, X)
        for o, name in enumerate(outputs):
            ax = axes[o][j]
            std = np.sqrt(np.maximum(epi[:, o], 0))
            ax.plot(X[:, j], mean[:, o], color="C0")
            ax.fill_between(X[:, j], mean[:, o] - 2 * std, mean[:, o] + 2 * std, color="C0", alpha=0.25, label="±2 epistemic std")
            ax.set_xlabel(space.names[j])
            if space.dimensions[j].scale == "log":
                ax.set_xscale("log")
            if j == 0:
                ax.set_ylabel(name)
    fig.suptitle("1-D slices through the centre of the box (others at mid-range)")
    fig.tight_layout()
    path = out / "slices_1d.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    paths.append(path)

    if space.dim >= 2:
        n = 60
        g = np.linspace(0.0, 1.0, n)
        U = np.full((n * n, space.dim), 0.5)
        U[:, 0] = np.repeat(g, n)
        U[:, 1] = np.tile(g, n)
        X = space.from_unit(U)
        mean, epi, _ = _predict_physical(surrogate, space, X)
        fig, axes = plt.subplots(len(outputs), 2, figsize=(10, 4 * len(outputs)), squeeze=False)
        for o, name in enumerate(outputs):
            for col, (values, title) in enumerate(((mean[:, o], "mean"), (np.sqrt(np.maximum(epi[:, o], 0)), "epistemic std"))):
                ax = axes[o][col]
                im = ax.tricontourf(X[:, 0], X[:, 1], values, levels=30, cmap="viridis")
                fig.colorbar(im, ax=ax)
                ax.scatter(final["X"][:, 0], final["X"][:, 1], s=6, color="white", edgecolors="k", linewidths=0.3)
                ax.set_title(f"{name}: {title}")
                ax.set_xlabel(space.names[0])
                ax.set_ylabel(space.names[1])
        fig.suptitle(f"{space.names[0]} x {space.names[1]} slice (others at mid-range); dots: samples")
        fig.tight_layout()
        path = out / "map_2d.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(store_path: str | Path, out_dir: str | Path) -> list[Path]:
    """Write PNG plots and ``summary.md`` for the campaign in ``store_path``.

    Returns:
        The files written.
    """
    from surrogate_al.campaign.build import restore_surrogate
    from surrogate_al.store import CampaignStore

    out = Path(out_dir)
    with CampaignStore.open(store_path, mode="r") as store:
        # Only once the store opened: a file that is not a store leaves no empty report folder.
        out.mkdir(parents=True, exist_ok=True)
        summary = store.summary()
        final = _final_arrays(store)
        files = [p for p in (_learning_curve(store, out), _sample_map(store, final, out)) if p is not None]
        try:
            spec, surrogate = restore_surrogate(store)
        except StoreError as exc:
            logger.info("no model plots: %s", exc)
            spec, surrogate = None, None
        if surrogate is not None:
            files += _slices(spec, surrogate, final, out)
        all_runs = store.arrays()
        util = worker_utilisation(np.asarray(all_runs["start_time"]), np.asarray(all_runs["finish_time"]), np.asarray(all_runs["worker"]))
        lines = [
            f"# Campaign report: {Path(store_path).name}",
            "",
            f"- state: {summary['state']} ({summary.get('state_reason') or 'no reason recorded'})",
            f"- budget used: {summary['n_final']} / {summary.get('budget')}",
            f"- settled runs by status: {', '.join(f'{k} {v}' for k, v in sorted(summary['status_counts'].items()))}",
            f"- attempts (with retries): {summary['n_attempts']}",
            f"- median wall time per run: {np.median(final['wall_time']) if len(final['wall_time']) else float('nan'):.3g} s",
            f"- worker utilisation (busy / workers x span): {util:.1%}" if not math.isnan(util) else "- worker utilisation: n/a",
        ]
        for name, value in sorted(summary["metrics"].items()):
            lines.append(f"- last {name}: {value:.4g}")
        lines += ["", "## Files", ""] + [f"- ![{p.stem}]({p.name})" for p in files]
        summary_path = out / "summary.md"
        summary_path.write_text("\n".join(lines) + "\n")
        files.append(summary_path)
    return files


def predict_csv(store_path: str | Path, inputs_csv: str | Path) -> str:
    """Predict at the points of a CSV (header = input names); returns CSV text.

    Columns: the inputs, then per output ``<name>_mean``, ``<name>_std``
    (total predictive std) and ``<name>_epistemic_std``.
    """
    from surrogate_al.campaign.build import load_points_file, restore_surrogate
    from surrogate_al.store import CampaignStore

    with CampaignStore.open(store_path, mode="r") as store:
        spec, surrogate = restore_surrogate(store)
    space = spec.space()
    path = Path(inputs_csv)
    if not path.exists():
        raise ConfigError(f"{path}: no such file; give a CSV with columns {list(space.names)}")
    X = load_points_file(path, space)
    mean, epi, ale = _predict_physical(surrogate, space, X)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    header = list(space.names)
    for name in spec.simulator.outputs:
        header += [f"{name}_mean", f"{name}_std", f"{name}_epistemic_std"]
    writer.writerow(header)
    for i in range(len(X)):
        row = [repr(float(v)) for v in X[i]]
        for o in range(mean.shape[1]):
            row += [repr(float(mean[i, o])), repr(float(math.sqrt(max(epi[i, o] + ale[i, o], 0.0)))), repr(float(math.sqrt(max(epi[i, o], 0.0))))]
        writer.writerow(row)
    return buffer.getvalue()


def export_runs(store_path: str | Path, target: str | Path, *, fmt: str = "csv", all_attempts: bool = False) -> Path:
    """Write the runs (settled ones, or every attempt) as CSV or NPZ."""
    from surrogate_al.store import CampaignStore

    with CampaignStore.open(store_path, mode="r") as store:
        arrays = store.arrays() if all_attempts else _final_arrays(store)
        inputs, outputs = list(store.input_names), list(store.output_names)
    target = Path(target)
    if fmt == "npz":
        np.savez(target, input_names=np.array(inputs), output_names=np.array(outputs), **{k: np.asarray(v) for k, v in arrays.items()})
        return target
    if fmt != "csv":
        raise ConfigError(f"export format {fmt!r} is unknown; expected 'csv' or 'npz'")
    scalar_cols = [k for k in ("run_id", "proposal_id", "attempt", "final", "status", "wall_time", "submit_time", "start_time", "finish_time", "worker", "host") if k in arrays]
    with open(target, "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(scalar_cols + inputs + outputs)
        for i in range(len(arrays["X"])):
            row = [arrays[c][i].item() if hasattr(arrays[c][i], "item") else arrays[c][i] for c in scalar_cols]
            writer.writerow(row + [repr(float(v)) for v in arrays["X"][i]] + [repr(float(v)) for v in arrays["Y"][i]])
    return target
