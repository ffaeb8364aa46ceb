"""Workflow files (TOML) -> a validated, frozen campaign spec.

A campaign is described by one TOML file with the sections ``[campaign]``,
``[simulator]``, ``[surrogate]``, ``[acquisition]``, ``[cluster]`` and
``[validation]`` (see ``docs/workflow.md`` for every key). The loader reads the
file, checks every value, fills defaults (some depend on other fields:
``campaign.batch_size`` defaults to ``campaign.concurrency``), resolves relative
paths against the workflow file's directory and returns a :class:`WorkflowSpec`
whose values are all frozen (tables become :class:`FrozenMap`, lists become
tuples). Every problem is one single-line :class:`~surrogate_al.errors.ConfigError`
naming the file, the field path, the bad value and the fix.

Loading a workflow imports no torch.
"""

from surrogate_al.config.acquisition import AcquisitionSpec, LambdaScheduleSpec
from surrogate_al.config.campaign import CampaignSpec, InitialDesignSpec, StopSpec
from surrogate_al.config.cluster import JOBQUEUE_KINDS, AdaptSpec, ClusterSpec, TLSFiles
from surrogate_al.config.loader import check_workflow, load_workflow, parse_workflow, spec_from_dict
from surrogate_al.config.simulator import COMMAND_PLACEHOLDERS, InputBounds, SimulatorSpec
from surrogate_al.config.spec import WorkflowSpec
from surrogate_al.config.surrogate import SurrogateSpec
from surrogate_al.config.validation import ValidationSpec
from surrogate_al.config.values import FrozenMap

__all__ = [
    "FrozenMap",
    "WorkflowSpec",
    "CampaignSpec",
    "InitialDesignSpec",
    "StopSpec",
    "SimulatorSpec",
    "InputBounds",
    "SurrogateSpec",
    "AcquisitionSpec",
    "LambdaScheduleSpec",
    "ClusterSpec",
    "AdaptSpec",
    "TLSFiles",
    "ValidationSpec",
    "check_workflow",
    "load_workflow",
    "parse_workflow",
    "spec_from_dict",
    "JOBQUEUE_KINDS",
    "COMMAND_PLACEHOLDERS",
]
