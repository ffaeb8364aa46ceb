"""Surrogate models, their BoTorch adapter, variance calibration and the registry.

``SURROGATES`` maps the surrogate kinds a workflow file may name to their
classes; :func:`make_surrogate` builds one from a kind and keyword options and
rejects unknown kinds and option names (checked against
:data:`surrogate_al.registry.SURROGATE_OPTIONS`) with a :class:`ConfigError`
that lists what is accepted.
"""

from __future__ import annotations

from typing import Any

from surrogate_al.errors import ConfigError
from surrogate_al.registry import SURROGATE_OPTIONS, unknown_options
from surrogate_al.surrogates.base import Prediction, Surrogate
from surrogate_al.surrogates.botorch_adapter import SurrogateModel
from surrogate_al.surrogates.calibration import (
    CalibrationReport,
    VarianceCalibrator,
    calibration_report,
    prediction_report,
)
from surrogate_al.surrogates.ensemble import DeepEnsemble
from surrogate_al.surrogates.gp import GaussianProcess
from surrogate_al.surrogates.mc_dropout import MCDropoutMLP
from surrogate_al.surrogates.selection import AutoSurrogate

__all__ = [
    "SURROGATES",
    "AutoSurrogate",
    "CalibrationReport",
    "DeepEnsemble",
    "GaussianProcess",
    "MCDropoutMLP",
    "Prediction",
    "Surrogate",
    "SurrogateModel",
    "VarianceCalibrator",
    "calibration_report",
    "make_surrogate",
    "prediction_report",
]

SURROGATES: dict[str, type] = {
    "gp": GaussianProcess,
    "ensemble": DeepEnsemble,
    "mc_dropout": MCDropoutMLP,
    "auto": AutoSurrogate,
}


def make_surrogate(kind: str, **options: Any) -> Surrogate:
    """Build an unfitted surrogate of a registered kind.

    Args:
        kind: a key of :data:`SURROGATES` (``"gp"``, ``"ensemble"``, ``"mc_dropout"``,
            ``"auto"``: chosen among candidate kinds by cross-validation).
        **options: constructor keyword arguments of that class, as listed in
            :data:`surrogate_al.registry.SURROGATE_OPTIONS`.

    Returns:
        The surrogate, unfitted.

    Raises:
        ConfigError: ``kind`` is not registered, or an option is not a
            constructor argument of that kind (the message lists the accepted
            ones; a kind added to :data:`SURROGATES` at run time, with no
            options table, leaves the check to its constructor); the
            constructor's own ConfigErrors for bad values.

    Example:
        >>> gp = make_surrogate("gp", kernel="matern52", bounds=bounds)
    """
    if kind not in SURROGATES:
        raise ConfigError(f"surrogate kind = {kind!r} is not known; choose one of {sorted(SURROGATES)}")
    cls = SURROGATES[kind]
    if kind not in SURROGATE_OPTIONS:
        # A kind added to SURROGATES at run time (a test double, an extension) has no
        # options table; its constructor is the only judge of its options.
        return cls(**options)
    accepted = list(SURROGATE_OPTIONS[kind])
    unknown = unknown_options(options, accepted)
    if unknown:
        raise ConfigError(
            f"surrogate kind {kind!r} ({cls.__name__}) has no option(s) {unknown}; accepted options: {accepted}"
        )
    return cls(**options)
