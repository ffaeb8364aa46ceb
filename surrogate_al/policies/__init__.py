"""Acquisition policies: a surrogate plus an acquisition rule that proposes the next inputs."""

from surrogate_al.policies.base import ModelPolicyLike, PolicyLike, Proposal

__all__ = ["ModelPolicyLike", "PolicyLike", "Proposal"]
