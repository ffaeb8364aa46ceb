"""Build the campaign's parts from a validated workflow spec.

Resume rebuilds every object from the spec stored in the campaign file, so the
construction lives in one place: a fresh run and a resumed run get identical
simulators, surrogates and policies.
"""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import NDArray

from surrogate_al.errors import ConfigError
from surrogate_al.space import InputSpace

if TYPE_CHECKING:
    from surrogate_al.config import WorkflowSpec
    from surrogate_al.policies.base import PolicyLike
    from surrogate_al.simulation import PythonSimulator, ScriptSimulator
    from surrogate_al.store import CampaignStore
    from surrogate_al.surrogates.base import Surrogate

__all__ = [
    "build_simulator",
    "build_surrogate",
    "surrogate_options",
    "build_policy",
    "default_initial_design_size",
    "initial_design_size",
    "load_points_file",
    "load_validation",
    "restore_surrogate",
]

logger = logging.getLogger(__name__)


def build_simulator(spec: WorkflowSpec, space: InputSpace) -> PythonSimulator | ScriptSimulator:
    """The simulator wrapper described by ``spec.simulator``."""
    from surrogate_al.simulation import PythonSimulator, ScriptSimulator

    sim = spec.simulator
    outputs = tuple(sim.outputs)
    fixed = dict(sim.fixed_inputs or {})
    if sim.kind == "python":
        return PythonSimulator(sim.function, space.names, outputs, fixed_inputs=fixed or None, timeout=sim.timeout)
    return ScriptSimulator(
        list(sim.command),
        space.names,
        outputs,
        input_format=sim.input_format,
        template=Path(sim.template) if sim.template is not None else None,
        input_filename=sim.input_filename,
        output_format=sim.output_format,
        output_filename=sim.output_filename,
        output_regex=dict(sim.output_regex) if sim.output_regex else None,
        parse=sim.parse,
        workdir_root=Path(sim.workdir),
        keep_workdirs=sim.keep_workdirs,
        timeout=sim.timeout,
        env=dict(sim.env) if sim.env else None,
        fixed_inputs=fixed or None,
        kill_grace=sim.kill_grace,
    )


def surrogate_options(spec: WorkflowSpec, d: int) -> dict[str, Any]:
    """Constructor options of the campaign's surrogate for ``d`` unit-cube inputs."""
    import torch

    # The workflow refuses seed/device/bounds in surrogate.options: the campaign sets them here.
    options = spec.surrogate.options.thaw() if spec.surrogate.options else {}
    options["bounds"] = torch.stack([torch.zeros(d), torch.ones(d)]).double()
    options["seed"] = spec.campaign.seed
    options["device"] = spec.surrogate.device
    return options


def build_surrogate(spec: WorkflowSpec, d: int) -> Surrogate:
    """A fresh (unfitted) surrogate for ``d`` unit-cube inputs."""
    from surrogate_al.surrogates import make_surrogate

    return make_surrogate(spec.surrogate.kind, **surrogate_options(spec, d))


def default_initial_design_size(d: int) -> int:
    """Runs in the initial design when the workflow does not say: ``max(2 d + 2, 8)`` for ``d`` inputs."""
    return max(2 * d + 2, 8)


def initial_design_size(spec: WorkflowSpec, d: int) -> int:
    """Runs in the initial design: ``initial_design.size``, else :func:`default_initial_design_size`, capped at the budget."""
    c = spec.campaign
    size = c.initial_design.size if c.initial_design.size is not None else default_initial_design_size(d)
    return int(min(size, c.budget))


def build_policy(spec: WorkflowSpec, space: InputSpace) -> PolicyLike:
    """The acquisition policy named in ``spec.acquisition`` with its surrogate."""
    from surrogate_al.acquisition import make_schedule
    from surrogate_al.policies import make_policy

    acq = spec.acquisition
    schedule = make_schedule(acq.lambda_schedule.kind, acq.lambda_schedule.start, acq.lambda_schedule.end)
    options: dict[str, Any] = {"seed": spec.campaign.seed}
    if acq.policy == "sobol" and spec.campaign.initial_design.kind == "sobol":
        # The design drew the first points of this very sequence (same seed): continue after them.
        options["skip"] = initial_design_size(spec, space.dim)
    if acq.policy not in ("random", "sobol"):
        options["surrogate"] = build_surrogate(spec, space.dim)
    if acq.policy == "default":
        options.update(
            mode=acq.mode,
            candidates=space.to_unit(load_points_file(acq.candidates, space)) if acq.mode == "pool" else None,
            schedule=schedule,
            batch=acq.batch,
            information=acq.information,
            surprise_cap=acq.surprise_cap,
            deterministic=spec.simulator.deterministic,
            localisation=acq.localisation,
            raw_samples=acq.raw_samples,
            restarts=acq.restarts,
            feasibility=acq.feasibility,
        )
    return make_policy(acq.policy, **options)


def _read_csv_columns(path: Path, columns: tuple[str, ...], what: str) -> NDArray[np.float64]:
    with open(path, newline="") as fh:
        reader = csv.DictReader(fh)
        header = reader.fieldnames or []
        missing = [c for c in columns if c not in header]
        if missing:
            raise ConfigError(f"{what} {path}: columns {missing} missing (header: {header}); expected {list(columns)}")
        rows = []
        for line, row in enumerate(reader, start=2):
            try:
                rows.append([float(row[c]) for c in columns])
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{what} {path}, line {line}: a value is not a number ({exc})") from exc
    return np.asarray(rows, dtype=float).reshape(-1, len(columns))


def load_points_file(path: str | Path, space: InputSpace) -> NDArray[np.float64]:
    """Read candidate inputs (``N x d``, scientist's units) from a CSV with a header or a ``.npy`` file.

    Raises:
        ConfigError: missing columns, non-numbers, wrong width, points outside the box.
    """
    path = Path(path)
    if path.suffix == ".npy":
        X = np.load(path, allow_pickle=False)
    else:
        X = _read_csv_columns(path, space.names, "candidates file")
    X = space.check_array(X, f"candidates in {path}")
    outside = ~space.contains(X)
    if outside.any():
        raise ConfigError(
            f"candidates file {path}: {int(outside.sum())} of {len(X)} points lie outside the input box "
            f"(first at row {int(np.argmax(outside))}); keep candidates within the inputs' bounds"
        )
    return X


def load_validation(path: str | Path, space: InputSpace, outputs: tuple[str, ...]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Read a held-out test set: ``n x d`` inputs and ``n x m`` outputs from one CSV."""
    table = _read_csv_columns(Path(path), tuple(space.names) + tuple(outputs), "validation file")
    return space.check_array(table[:, : space.dim], "validation inputs"), table[:, space.dim :]


def restore_surrogate(store: CampaignStore) -> tuple[WorkflowSpec, Surrogate]:
    """The campaign's last fitted surrogate, rebuilt from the spec and checkpoint in ``store``.

    Returns:
        ``(spec, surrogate)``.

    Raises:
        StoreError: the store holds no fitted surrogate yet.
    """
    from surrogate_al.state_bytes import state_from_bytes
    from surrogate_al.config import spec_from_dict
    from surrogate_al.errors import StoreError

    spec = spec_from_dict(store.spec)
    checkpoint = store.latest_checkpoint()
    if checkpoint is None or not checkpoint.surrogate_state:
        raise StoreError(
            f"{store.path}: no fitted surrogate stored yet (policy {spec.acquisition.policy!r} or too few runs); "
            "run or resume the campaign further first"
        )
    surrogate = build_surrogate(spec, spec.space().dim)
    surrogate.load_state_dict(state_from_bytes(checkpoint.surrogate_state))
    return spec, surrogate
