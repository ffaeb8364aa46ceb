"""The whole workflow: :class:`WorkflowSpec`, its sections, and the checks that span them."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

from pydantic import BaseModel, Field, ValidationInfo, model_validator

from surrogate_al.config.acquisition import AcquisitionSpec
from surrogate_al.config.campaign import CampaignSpec
from surrogate_al.config.cluster import ClusterSpec
from surrogate_al.config.messages import FieldError, set_fields, show
from surrogate_al.config.simulator import SimulatorSpec
from surrogate_al.config.surrogate import SurrogateSpec
from surrogate_al.config.validation import ValidationSpec
from surrogate_al.config.values import MODEL_CONFIG, ResolvedPath, context
from surrogate_al.space import Dimension, InputSpace

__all__ = ["WorkflowSpec"]


class WorkflowSpec(BaseModel):
    """A validated, frozen campaign description.

    Attributes:
        campaign: ``[campaign]``.
        simulator: ``[simulator]``.
        surrogate: ``[surrogate]`` (defaults when absent).
        acquisition: ``[acquisition]`` (defaults when absent).
        cluster: ``[cluster]`` (a local cluster when absent).
        validation: ``[validation]`` or None.
        workflow_dir: the directory relative paths were resolved against (the
            workflow file's directory); set by the loader, not by the file.
    """

    model_config = MODEL_CONFIG

    campaign: CampaignSpec
    simulator: SimulatorSpec
    surrogate: SurrogateSpec = Field(default_factory=SurrogateSpec)
    acquisition: AcquisitionSpec = Field(default_factory=AcquisitionSpec)
    cluster: ClusterSpec = Field(default_factory=ClusterSpec)
    validation: ValidationSpec | None = None
    workflow_dir: ResolvedPath

    @model_validator(mode="after")
    def _cross_checks(self, info: ValidationInfo) -> WorkflowSpec:
        store = self.campaign.store
        assert store is not None  # resolved by CampaignSpec
        if self.simulator.workdir is None:
            set_fields(self.simulator, workdir=store.parent / f"{store.stem}_runs")
        if self.cluster.kind == "local" and self.cluster.workers is None:
            set_fields(self.cluster, workers=self.campaign.concurrency)
        self._check_gpu_workers()
        if context(info).check_files:
            self._check_file_headers()
        return self

    def _check_gpu_workers(self) -> None:
        # A task needing a GPU resource no worker offers waits forever in Dask: refuse it up front.
        cluster = self.cluster
        if cluster.kind == "address":
            return  # the remote workers' resources are unknown here
        has_gpus = cluster.worker_gpus > 0 if cluster.kind == "local" else cluster.gpus_per_worker > 0
        fix = "worker_gpus" if cluster.kind == "local" else "gpus_per_worker"
        for section, spec in (("simulator", self.simulator), ("surrogate", self.surrogate)):
            if spec.gpu and not has_gpus:
                raise FieldError(
                    f"gpu = true but no worker of the {cluster.kind} cluster has a GPU, so the work would never "
                    f"start; set cluster.{fix} >= 1, or gpu = false",
                    (section, "gpu"),
                )

    def _check_file_headers(self) -> None:
        names = list(self.simulator.inputs)
        candidates = self.acquisition.candidates
        if candidates is not None:
            if candidates.suffix.lower() == ".csv":
                _require_columns(candidates, names, ("acquisition", "candidates"))
            else:
                _require_npy_columns(candidates, len(names), ("acquisition", "candidates"))
        if self.validation is not None:
            _require_columns(self.validation.file, names + list(self.simulator.outputs), ("validation", "file"))

    def space(self) -> InputSpace:
        """The campaign's input space, in the order of ``[simulator.inputs]``."""
        return InputSpace(Dimension(n, b.low, b.high, b.scale) for n, b in self.simulator.inputs.items())

    def to_dict(self) -> dict[str, Any]:
        """The spec as JSON-able data (paths as strings); :func:`spec_from_dict` inverts it."""
        return self.model_dump(mode="json")


def _require_columns(path: Path, columns: list[str], field: tuple[str, ...]) -> None:
    """Check that a CSV file's header names every one of ``columns``."""
    try:
        with open(path, newline="", encoding="utf-8") as fh:
            header = next(csv.reader(fh), None)
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise FieldError(
            f"cannot read {show(path)} as CSV ({exc}); give a UTF-8 CSV file with a header row", field
        ) from exc
    present = {h.strip() for h in header or []}
    missing = [c for c in columns if c not in present]
    if missing:
        raise FieldError(
            f"{show(path)} lacks columns {missing} (header: {sorted(present)}); its first row must name "
            f"the columns {columns}",
            field,
        )


def _require_npy_columns(path: Path, d: int, field: tuple[str, ...]) -> None:
    """Check that a .npy file holds an ``n x d`` array (reads the header only)."""
    import numpy as np

    try:
        shape = np.load(path, mmap_mode="r", allow_pickle=False).shape
    except (OSError, ValueError) as exc:
        raise FieldError(f"cannot read {show(path)} as .npy ({exc}); save it with numpy.save", field) from exc
    if len(shape) != 2 or shape[1] != d or shape[0] < 1:
        raise FieldError(
            f"{show(path)} holds an array of shape {shape}; expected (n, {d}) with one column per input", field
        )
