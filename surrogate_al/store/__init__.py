"""The campaign store: one HDF5 file per campaign plus, while a driver runs, its journal and lock."""

from surrogate_al.store.campaign_store import CampaignStore
from surrogate_al.store.lock import LockLostError
from surrogate_al.store.records import CAMPAIGN_STATES, RUN_STATUSES, Checkpoint, ProposalRecord, RunRecord
from surrogate_al.store.tables import FORMAT, SCHEMA_VERSION

__all__ = [
    "CAMPAIGN_STATES",
    "FORMAT",
    "RUN_STATUSES",
    "SCHEMA_VERSION",
    "CampaignStore",
    "Checkpoint",
    "LockLostError",
    "ProposalRecord",
    "RunRecord",
]
