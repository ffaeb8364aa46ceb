"""Policies by name: the classes behind the names a workflow may use, and :func:`make_policy`.

The names and their options are data in :mod:`surrogate_al.registry`
(``POLICY_OPTIONS``, torch-free, so loading a workflow checks them without
importing a model); this module maps each name to its class.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from surrogate_al.errors import ConfigError
from surrogate_al.policies.base import PolicyLike
from surrogate_al.policies.baselines import RandomPolicy, SobolPolicy, UncertaintyPolicy
from surrogate_al.policies.hybrid import Policy
from surrogate_al.policies.qnipv import QNIPVPolicy
from surrogate_al.policies.state import CountingPolicy, ModelPolicy
from surrogate_al.registry import POLICY_OPTIONS, unknown_options
from surrogate_al.surrogates.base import Surrogate

__all__ = ["POLICIES", "POLICY_CLASSES", "make_policy"]

logger = logging.getLogger(__name__)

#: The policy names, in the order of :data:`surrogate_al.registry.POLICY_OPTIONS`.
POLICIES: tuple[str, ...] = tuple(POLICY_OPTIONS)

#: The class behind each policy name.
POLICY_CLASSES: Mapping[str, type[CountingPolicy]] = MappingProxyType({
    "default": Policy,
    "random": RandomPolicy,
    "sobol": SobolPolicy,
    "uncertainty": UncertaintyPolicy,
    "qnipv": QNIPVPolicy,
})


def make_policy(name: str, surrogate: Surrogate | None = None, **options: Any) -> PolicyLike:
    """Build a policy by name.

    Args:
        name: one of :data:`POLICIES`.
        surrogate: the surrogate for model-based policies (None: an exact GP
            on the unit cube, built at the first fit); ignored by
            ``"random"`` and ``"sobol"``.
        **options: keyword arguments of the policy's constructor (e.g.
            ``seed``, ``mode``, ``schedule``, ``batch``, ``raw_samples``),
            as listed in :data:`surrogate_al.registry.POLICY_OPTIONS`.

    Returns:
        The policy (a :class:`PolicyLike`; a
        :class:`~surrogate_al.policies.base.ModelPolicyLike` for the
        model-based ones).

    Raises:
        ConfigError: unknown name (the message lists the known ones) or an
            option the policy does not take (the message lists those it takes).
    """
    if name not in POLICY_CLASSES:
        raise ConfigError(f"acquisition policy {name!r} is unknown; expected one of {list(POLICIES)}")
    cls = POLICY_CLASSES[name]
    accepted = list(POLICY_OPTIONS[name])
    unknown = unknown_options(options, accepted)
    if unknown:
        raise ConfigError(f"policy {name!r} does not take options {unknown}; it accepts {accepted}")
    if not issubclass(cls, ModelPolicy):
        if surrogate is not None:
            logger.info("policy %r uses no model; the surrogate passed is ignored", name)
        return cls(**options)  # type: ignore[return-value]
    return cls(surrogate, **options)  # type: ignore[return-value]
