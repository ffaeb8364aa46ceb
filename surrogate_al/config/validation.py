"""``[validation]``: a held-out data set to measure the surrogate's error."""

from __future__ import annotations

from pydantic import BaseModel, Field

from surrogate_al.config.values import MODEL_CONFIG, ExistingFile

__all__ = ["ValidationSpec"]


class ValidationSpec(BaseModel):
    """``[validation]``: a held-out CSV (inputs and outputs) to measure the surrogate's error."""

    model_config = MODEL_CONFIG

    file: ExistingFile = Field(description="CSV with columns = input names + output names")
