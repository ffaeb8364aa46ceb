"""What a campaign checkpoint holds, and its two byte payloads in the store.

A proposal round writes its checkpoint before its proposals, and the
checkpoint carries the round's points: a kill between the two writes leaves a
round that a resumed campaign records, never recorded points with an older
policy state (which would propose the same points again). So a checkpoint is
three things (:class:`CheckpointContents`): the surrogate's state, the
policy's own state and, for a round's checkpoint, the :class:`ProposalRound`.

In the store a checkpoint is two byte strings (``surrogate_state``,
``policy_state``; :mod:`surrogate_al.state_bytes`, read back with
``weights_only``). The round travels inside the ``policy_state`` payload
under the reserved key :data:`ROUND_KEY`, as plain data: that is the layout
every store has used, so a checkpoint written here and one read from an older
store are the same bytes. Only this module knows the key; the policy's
``state_dict`` never sees it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from surrogate_al.errors import CampaignError
from surrogate_al.state_bytes import state_from_bytes, state_to_bytes

if TYPE_CHECKING:
    from surrogate_al.policies.base import Proposal
    from surrogate_al.store import Checkpoint

__all__ = ["ROUND_KEY", "CheckpointContents", "ProposalRound"]

#: Key of the ``policy_state`` payload that carries the round a checkpoint was saved for.
ROUND_KEY = "_campaign_round"


def _floats(values: ArrayLike | None) -> list[float] | None:
    return None if values is None else np.asarray(values, dtype=float).reshape(-1).tolist()


def _array(values: ArrayLike | None) -> NDArray[np.float64] | None:
    return None if values is None else np.asarray(values, dtype=float)


@dataclass(frozen=True)
class ProposalRound:
    """The points of a proposal round and the scores that chose them.

    Attributes:
        first_id: the proposal id its first point gets (the proposals recorded
            before it); a resume records the round only if the store still
            holds exactly that many.
        unit: ``q x d`` points in the unit cube.
        source: the policy that proposed them (stored as each proposal's source).
        U: ``q`` normalised uncertainties (None when not recorded).
        D: ``q`` diversities (None when not recorded).
        J: ``q`` hybrid scores (None when not recorded).
        lam: λ of the round.
    """

    first_id: int
    unit: NDArray[np.float64]
    source: str
    U: NDArray[np.float64] | None
    D: NDArray[np.float64] | None
    J: NDArray[np.float64] | None
    lam: float

    @classmethod
    def from_proposal(cls, first_id: int, proposal: Proposal, source: str) -> ProposalRound:
        """The round of ``proposal``, whose first point becomes proposal ``first_id``."""
        return cls(
            first_id=first_id,
            unit=np.asarray(proposal.X, dtype=float),
            source=source,
            U=_array(proposal.U),
            D=_array(proposal.D),
            J=_array(proposal.J),
            lam=float(proposal.lam),
        )

    def to_plain(self) -> dict[str, Any]:
        """Lists, strings and floats only (a checkpoint is read back with ``weights_only``)."""
        return {
            "first_id": int(self.first_id),
            "unit": np.asarray(self.unit, dtype=float).tolist(),
            "source": self.source,
            "U": _floats(self.U),
            "D": _floats(self.D),
            "J": _floats(self.J),
            "lam": float(self.lam),
        }

    @classmethod
    def from_plain(cls, plain: Mapping[str, Any]) -> ProposalRound:
        """Inverse of :meth:`to_plain`."""
        return cls(
            first_id=int(plain["first_id"]),
            unit=np.asarray(plain["unit"], dtype=float),
            source=str(plain["source"]),
            U=_array(plain["U"]),
            D=_array(plain["D"]),
            J=_array(plain["J"]),
            lam=float(plain["lam"]),
        )


@dataclass(frozen=True)
class CheckpointContents:
    """The learned state of a campaign at one model version.

    Attributes:
        version: the model version it belongs to.
        n_results: successful runs the surrogate was fitted on (0 before a fit).
        surrogate_state: the surrogate's ``state_dict`` (None: no fitted surrogate).
        policy_state: the policy's ``state_dict``.
        round: the proposal round it was saved for (None outside a round).
    """

    version: int
    n_results: int
    surrogate_state: dict[str, Any] | None
    policy_state: dict[str, Any]
    round: ProposalRound | None = None

    def payloads(self) -> tuple[bytes, bytes]:
        """``(surrogate_state, policy_state)`` as the store keeps them (see the module docstring).

        Raises:
            CampaignError: the policy's state uses the reserved :data:`ROUND_KEY`.
        """
        if ROUND_KEY in self.policy_state:
            raise CampaignError(f"a policy's state_dict may not hold the key {ROUND_KEY!r}: the campaign reserves it")
        policy_state = dict(self.policy_state)
        if self.round is not None:
            policy_state[ROUND_KEY] = self.round.to_plain()
        surrogate = state_to_bytes(self.surrogate_state) if self.surrogate_state is not None else b""
        return surrogate, state_to_bytes(policy_state)

    @classmethod
    def from_record(cls, checkpoint: Checkpoint) -> CheckpointContents:
        """Decode a checkpoint read from the store (any store's: the layout has not changed)."""
        policy_state = state_from_bytes(checkpoint.policy_state)
        plain_round = policy_state.pop(ROUND_KEY, None)
        return cls(
            version=int(checkpoint.version),
            n_results=int(checkpoint.n_results),
            surrogate_state=state_from_bytes(checkpoint.surrogate_state) if checkpoint.surrogate_state else None,
            policy_state=policy_state,
            round=None if plain_round is None else ProposalRound.from_plain(plain_round),
        )
