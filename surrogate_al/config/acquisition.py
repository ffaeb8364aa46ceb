"""``[acquisition]``: how the next inputs are chosen."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, StrictBool, StrictInt, model_validator

from surrogate_al.config.messages import FieldError, only_when, show
from surrogate_al.config.values import MODEL_CONFIG, ExistingFile, Number

__all__ = ["AcquisitionSpec", "LambdaScheduleSpec"]


class LambdaScheduleSpec(BaseModel):
    """``[acquisition.lambda_schedule]``: weight λ of uncertainty vs diversity over the campaign."""

    model_config = MODEL_CONFIG

    kind: Literal["constant", "linear", "cosine", "exponential"] = Field(default="constant", description="schedule shape")
    # None: 0.9 for 'constant' (the default λ), 0.3 for the others (an exploratory opening), so
    # choosing an annealed kind without a start does not give a flat line.
    start: Number | None = Field(
        default=None, ge=0, le=1, description="λ at the start of the campaign (throughout for 'constant')"
    )
    end: Number = Field(default=0.9, ge=0, le=1, description="λ at the end of the budget")


class AcquisitionSpec(BaseModel):
    """``[acquisition]``: how the next inputs are chosen."""

    model_config = MODEL_CONFIG

    policy: Literal["default", "random", "sobol", "uncertainty", "qnipv"] = Field(
        default="default", description="acquisition policy"
    )
    mode: Literal["synthesis", "pool"] = Field(default="synthesis", description="optimise over the box or a pool")
    candidates: ExistingFile | None = Field(default=None, description="CSV or .npy file of candidate inputs (pool)")
    lambda_schedule: LambdaScheduleSpec = Field(default_factory=LambdaScheduleSpec)
    batch: Literal["greedy", "topq"] = Field(default="greedy", description="batch selection")
    information: Literal["variance", "logdet"] = Field(
        default="variance", description="information term of the greedy batch objective"
    )
    surprise_cap: Number = Field(
        default=1.0, ge=1,
        description="largest weight of a candidate near a run the model cannot predict (leave-one-out); 1: off",
    )
    localisation: Number | None = Field(
        default=None, ge=0,
        description="taper lengthscale (a multiple of sqrt(d / 6)) of a deep ensemble's covariances in the batch "
        "objective; 0: no taper; default: 0.5 when simulator.deterministic = true, else 0",
    )
    raw_samples: StrictInt = Field(default=1024, ge=1, description="random starts screened by the optimiser")
    restarts: StrictInt = Field(default=8, ge=1, description="gradient restarts of the optimiser")
    feasibility: StrictBool = Field(default=True, description="learn where the simulator fails and avoid it")

    @model_validator(mode="after")
    def _check_mode(self) -> AcquisitionSpec:
        if self.mode == "pool":
            if self.candidates is None:
                raise FieldError(
                    "required when mode = 'pool'; give a CSV (header = input names) or .npy file of candidates",
                    ("candidates",),
                )
            if self.candidates.suffix.lower() not in (".csv", ".npy"):
                raise FieldError(
                    f"unsupported file type (got {show(self.candidates)}); expected a .csv or .npy file",
                    ("candidates",),
                )
        else:
            only_when(self, ("candidates",), "mode = 'pool'")
        if self.batch == "topq":
            only_when(self, ("surprise_cap", "localisation"), "batch = 'greedy'")
        return self
