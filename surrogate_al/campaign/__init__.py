"""The active-learning campaign: ask / tell over a store, the loops on a Dask cluster, checkpoints, stop rules.

``from surrogate_al.campaign import Campaign`` is the entry point; the modules:
:mod:`~surrogate_al.campaign.core` (:class:`Campaign`),
:mod:`~surrogate_al.campaign.state` (trials, the ledger, progress),
:mod:`~surrogate_al.campaign.loops` (asynchronous and synchronous loops),
:mod:`~surrogate_al.campaign.background` (the proposer thread, the model-choice process),
:mod:`~surrogate_al.campaign.lookahead`, :mod:`~surrogate_al.campaign.checkpoint`,
:mod:`~surrogate_al.campaign.stopping`, :mod:`~surrogate_al.campaign.faults`,
:mod:`~surrogate_al.campaign.estimate` and :mod:`~surrogate_al.campaign.build`
(the campaign's parts from a workflow spec).
"""

from surrogate_al.campaign.core import Campaign
from surrogate_al.campaign.faults import FAILED_STATUSES, worker_death_tries
from surrogate_al.campaign.state import CampaignOutcome, Progress, Trial
from surrogate_al.campaign.stopping import StopReason

__all__ = ["FAILED_STATUSES", "Campaign", "CampaignOutcome", "Progress", "StopReason", "Trial", "worker_death_tries"]
