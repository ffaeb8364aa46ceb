"""``[campaign]``: budget, parallelism, initial design, store and stop rules."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictBool, StrictInt, StrictStr, ValidationInfo, model_validator

from surrogate_al.config.messages import FieldError, set_fields, show
from surrogate_al.config.values import MODEL_CONFIG, Number, ResolvedPath, Seconds, context

__all__ = ["CampaignSpec", "InitialDesignSpec", "StopSpec"]


class InitialDesignSpec(BaseModel):
    """``[campaign.initial_design]``: the space-filling design run before any model is fitted."""

    model_config = MODEL_CONFIG

    size: StrictInt | None = Field(
        default=None, ge=1, description="number of design runs; absent: max(2*d+2, 8) capped at the budget"
    )
    kind: Literal["sobol", "lhs", "random"] = Field(default="sobol", description="design kind")


class StopSpec(BaseModel):
    """``[campaign.stop]``: optional early-stopping rules (the budget always applies) and the grace on a stop signal."""

    model_config = MODEL_CONFIG

    max_wall_time: Seconds | None = Field(
        default=None, gt=0, description="stop after this long (seconds or '2h', '30m', '1h30m')"
    )
    target_error: Number | None = Field(
        default=None, gt=0, description="stop when the estimated surrogate error drops below this"
    )
    grace: Seconds = Field(
        default=0.0,
        ge=0,
        description="on SIGTERM/SIGINT/SIGUSR1, seconds the runs in flight may take to finish before they are killed",
    )


def _check_campaign_name(value: str) -> str:
    if not value.strip() or any(c in value for c in "/\\\x00\n\r") or value in (".", ".."):
        raise FieldError(
            f"{show(value)} cannot name a campaign (it names the store file); use letters, digits, "
            "'-', '_' or '.', e.g. 'branin_gp'"
        )
    return value


class CampaignSpec(BaseModel):
    """``[campaign]``: budget, parallelism, initial design, store and stop rules.

    After validation ``name``, ``batch_size`` and ``store`` are always set.
    """

    model_config = MODEL_CONFIG

    name: Annotated[StrictStr, AfterValidator(_check_campaign_name)] | None = Field(
        default=None, description="campaign name (default: the workflow file's stem)"
    )
    budget: StrictInt = Field(ge=1, description="number of settled runs (int >= 1)")
    concurrency: StrictInt = Field(default=2, ge=1, description="runs in flight at once")
    mode: Literal["async", "sync"] = Field(default="async", description="refill as runs finish, or batch by batch")
    batch_size: StrictInt | None = Field(
        default=None, ge=1, description="points proposed at once (default: concurrency)"
    )
    initial_design: InitialDesignSpec = Field(default_factory=InitialDesignSpec)
    seed: StrictInt = Field(default=0, ge=0, description="seed of every random choice")
    store: ResolvedPath | None = Field(default=None, description="HDF5 campaign file (default: <name>.h5)")
    refit_every: StrictInt = Field(default=1, ge=1, description="refit the surrogate after this many new results")
    count_failed: StrictBool = Field(default=True, description="failed runs count toward the budget")
    max_failure_fraction: Number = Field(
        default=0.5, gt=0, le=1, description="stop when more than this fraction of runs fail"
    )
    min_runs_for_breaker: StrictInt = Field(
        default=10, ge=1, description="settled runs before the failure-rate breaker may trip"
    )
    stop: StopSpec = Field(default_factory=StopSpec)

    @model_validator(mode="after")
    def _resolve_defaults(self, info: ValidationInfo) -> CampaignSpec:
        ctx = context(info)
        if self.name is None:
            stem = Path(ctx.source).stem
            set_fields(self, name=stem if stem and not ctx.source.startswith("<") else "campaign")
        if self.batch_size is None:
            set_fields(self, batch_size=self.concurrency)
        if self.store is None:
            set_fields(self, store=Path(os.path.normpath(ctx.base_dir / f"{self.name}.h5")))
        size = self.initial_design.size
        if size is not None and size > self.budget:
            raise FieldError(
                f"size = {size} exceeds the budget = {self.budget}; lower initial_design.size or raise "
                "campaign.budget",
                ("initial_design", "size"),
            )
        return self
