"""The project's exceptions.

One root, :class:`SurrogateALError`, so callers can catch everything the tool
raises on purpose; each subclass also inherits the matching built-in so code
written against ``ValueError`` / ``RuntimeError`` keeps working.

Messages name the offending field or value, what was expected, and how to fix
it; the CLI prints them as a single line and exits 2.
"""

from __future__ import annotations

__all__ = [
    "SurrogateALError",
    "ConfigError",
    "SpaceError",
    "ShapeError",
    "DataError",
    "NotFittedError",
    "SimulatorError",
    "StoreError",
    "NotACampaignStoreError",
    "StoreLockedError",
    "CorruptJournalError",
    "DispatchError",
    "CampaignError",
]


class SurrogateALError(Exception):
    """Root of every error surrogate_al raises on purpose."""


class ConfigError(SurrogateALError, ValueError):
    """A workflow file or a constructor argument is invalid."""


class SpaceError(ConfigError):
    """An input space (names, bounds, scales) is invalid."""


class ShapeError(SurrogateALError, ValueError):
    """An array has the wrong number of dimensions, rows or columns."""


class DataError(SurrogateALError, ValueError):
    """Training or simulator data has invalid values (NaN, inf, wrong type)."""


class NotFittedError(SurrogateALError, RuntimeError, AttributeError):
    """A model was used before ``fit`` was called.

    Also an ``AttributeError`` (as in scikit-learn): learned attributes do not
    exist before ``fit``, and ``isinstance(model, Surrogate)`` on an unfitted
    model must answer instead of raising.
    """


class SimulatorError(SurrogateALError, RuntimeError):
    """A simulator wrapper is misconfigured (not: a simulator run failed).

    Failed runs are data (:class:`surrogate_al.simulation.SimulationResult`
    with status ``failed``/``timeout``), never exceptions.
    """


class StoreError(SurrogateALError, RuntimeError):
    """The campaign store cannot be read or written."""


class NotACampaignStoreError(StoreError, ValueError):
    """A file is not a surrogate_al campaign store (or of an unknown schema)."""


class StoreLockedError(StoreError):
    """Another driver holds the campaign store's lock."""


class CorruptJournalError(StoreError, ValueError):
    """The store's journal is damaged in a way a kill cannot cause.

    A bad line before the last, a gap in the sequence numbers, or another
    store's journal. Never skipped silently: the records after the damage
    would be lost. The CLI exits 2, as for a damaged ``.h5``.
    """


class DispatchError(SurrogateALError, RuntimeError):
    """The Dask cluster cannot be created, reached or used."""


class CampaignError(SurrogateALError, RuntimeError):
    """A campaign cannot go on (failure-rate breaker, lost scheduler, ...)."""
