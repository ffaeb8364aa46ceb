"""The names a workflow may use for surrogates and policies, and their options, as plain data.

Config validation, :func:`surrogate_al.surrogates.make_surrogate` and
:func:`surrogate_al.policies.make_policy` all check options against these
tables, so the rules live in one place and loading a workflow imports no
torch. ``tests/unit/test_registry.py`` checks every table against the
constructor it describes, so the data cannot drift from the code.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from types import MappingProxyType

__all__ = [
    "MANAGED_SURROGATE_OPTIONS",
    "POLICY_OPTIONS",
    "SURROGATE_OPTIONS",
    "close_match",
    "unknown_options",
]

SURROGATE_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "gp": ("bounds", "kernel", "noise", "max_exact_points", "dtype", "device", "seed", "fit_options",
           "warm_start", "restarts"),
    "ensemble": ("num_members", "hidden_layers", "activation", "weight_decay", "bootstrap", "max_epochs",
                 "batch_size", "learning_rate", "warm_start", "seed", "device", "dtype", "bounds"),
    "mc_dropout": ("hidden_layers", "dropout", "num_passes", "activation", "weight_decay", "max_epochs",
                   "batch_size", "learning_rate", "warm_start", "seed", "device", "dtype", "bounds"),
    "auto": ("candidates", "folds", "reselect_growth", "se_margin", "candidate_options", "seed", "device",
             "dtype", "bounds"),
})
"""Constructor keyword names of each surrogate kind, in signature order."""

MANAGED_SURROGATE_OPTIONS: Mapping[str, str] = MappingProxyType({
    "bounds": "the campaign passes the unit-cube bounds of the input space",
    "seed": "use campaign.seed",
    "device": "use surrogate.device",
    "dtype": "the campaign uses float64 (a torch dtype cannot be written in TOML)",
})
"""Surrogate constructor arguments the campaign sets itself, with what to use instead."""

POLICY_OPTIONS: Mapping[str, tuple[str, ...]] = MappingProxyType({
    "default": ("mode", "candidates", "schedule", "batch", "raw_samples", "restarts", "feasibility", "seed",
                "reference_size", "maxiter", "output_weights", "information", "surprise_cap", "deterministic",
                "localisation"),
    "random": ("seed",),
    "sobol": ("seed", "skip"),
    "uncertainty": ("raw_samples", "restarts", "seed", "reference_size", "maxiter"),
    "qnipv": ("raw_samples", "restarts", "mc_points", "seed", "maxiter"),
})
"""Constructor keyword names of each policy (the surrogate argument excluded), in signature order."""


def unknown_options(given: Iterable[str], accepted: Iterable[str]) -> list[str]:
    """The names in ``given`` that are not in ``accepted``, sorted."""
    return sorted(set(given) - set(accepted))


def close_match(name: str, known: Iterable[str]) -> str | None:
    """The known name closest to a misspelt ``name``, or None if none is close."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return close[0] if close else None
