"""Acquisition policies: a surrogate plus an acquisition rule that proposes the next inputs.

A policy sees the unit cube only: :class:`~surrogate_al.data.Dataset` in,
:class:`Proposal` out. It is pure (no Dask, no files); the campaign owns the
loop, decides when to refit, stores every proposal and checkpoints the
policy's state next to the surrogate's. The contract is
:class:`PolicyLike` (:mod:`surrogate_al.policies.base`).

Policies by name (:func:`make_policy`):

* ``"default"`` (:class:`Policy`, :mod:`~surrogate_al.policies.hybrid`):
  hybrid uncertainty/diversity with a λ schedule, greedy submodular batches
  (or top-q), synthesis or pool mode, feasibility-weighted.
* ``"random"``, ``"sobol"``, ``"uncertainty"``
  (:mod:`~surrogate_al.policies.baselines`): uniform points, one continued
  scrambled Sobol sequence, pure epistemic top-q.
* ``"qnipv"`` (:mod:`~surrogate_al.policies.qnipv`): BoTorch's
  ``qNegIntegratedPosteriorVariance`` through
  :class:`~surrogate_al.surrogates.botorch_adapter.SurrogateModel`, optimised
  jointly for ``q`` points by ``optimize_acqf`` with the pending points as
  ``X_pending``.
"""

from surrogate_al.policies.base import ModelPolicyLike, PolicyLike, Proposal
from surrogate_al.policies.baselines import RandomPolicy, SobolPolicy, UncertaintyPolicy
from surrogate_al.policies.hybrid import DETERMINISTIC_LOCALISATION, Policy
from surrogate_al.policies.qnipv import QNIPVPolicy
from surrogate_al.policies.registry import POLICIES, POLICY_CLASSES, make_policy
from surrogate_al.policies.state import CountingPolicy, ModelPolicy

__all__ = [
    "DETERMINISTIC_LOCALISATION",
    "POLICIES",
    "POLICY_CLASSES",
    "CountingPolicy",
    "ModelPolicy",
    "ModelPolicyLike",
    "Policy",
    "PolicyLike",
    "Proposal",
    "QNIPVPolicy",
    "RandomPolicy",
    "SobolPolicy",
    "UncertaintyPolicy",
    "make_policy",
]
