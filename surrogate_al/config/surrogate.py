"""``[surrogate]``: the model that learns the simulator, checked against the registry."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field, StrictBool, model_validator

from surrogate_al.config.messages import FieldError
from surrogate_al.config.values import MODEL_CONFIG, FrozenMap, PlainTable
from surrogate_al.registry import MANAGED_SURROGATE_OPTIONS, SURROGATE_OPTIONS, close_match

__all__ = ["SurrogateSpec"]


class SurrogateSpec(BaseModel):
    """``[surrogate]``: the model that learns the simulator."""

    model_config = MODEL_CONFIG

    kind: Literal["gp", "ensemble", "mc_dropout", "auto"] = Field(
        default="auto",
        description="surrogate model ('auto', the default: the GP unless the ensemble cross-validates better)",
    )
    options: PlainTable = Field(default_factory=FrozenMap, description="constructor keyword arguments")
    device: Literal["auto", "cpu", "cuda"] = Field(default="auto", description="torch device for fitting")
    gpu: StrictBool = Field(default=False, description="fit on a GPU worker")

    @model_validator(mode="after")
    def _check_options(self) -> SurrogateSpec:
        # The registry holds the constructors' keyword names as data: no torch import here.
        known = SURROGATE_OPTIONS[self.kind]
        for name in self.options:
            if name in MANAGED_SURROGATE_OPTIONS:
                raise FieldError(
                    f"cannot be set here: {MANAGED_SURROGATE_OPTIONS[name]}; remove it from surrogate.options",
                    ("options", name),
                )
            if name not in known:
                close = close_match(name, known)
                hint = f"did you mean {close!r}? " if close else ""
                raise FieldError(
                    f"unknown option for kind = {self.kind!r}; {hint}(known options: {', '.join(known)})",
                    ("options", name),
                )
        return self
