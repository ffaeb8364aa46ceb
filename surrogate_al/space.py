"""Named, bounded input spaces and space-filling designs.

An :class:`InputSpace` is an ordered tuple of :class:`Dimension` objects. Every
model and acquisition in surrogate_al works on the unit cube ``[0, 1]^d``; the
space maps between the scientist's units and that cube. A log-scale dimension
is uniform in ``log(x)`` on the cube, which is what a parameter spanning
decades (a diffusivity, a rate constant) needs for a model to see it evenly.

Designs (Sobol, Latin hypercube, uniform random) come from ``scipy.stats.qmc``
and are reproducible from an integer seed.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import qmc

from surrogate_al.errors import ShapeError, SpaceError

__all__ = ["Dimension", "InputSpace", "DesignKind", "DESIGN_KINDS"]

Scale = Literal["linear", "log"]
DesignKind = Literal["sobol", "lhs", "random"]
DESIGN_KINDS: tuple[str, ...] = ("sobol", "lhs", "random")


@dataclass(frozen=True)
class Dimension:
    """One named input with bounds ``low < high`` and a scale.

    Args:
        name: identifier used in simulator inputs, files and reports.
        low: lower bound, in the scientist's units.
        high: upper bound, in the scientist's units.
        scale: ``"linear"`` or ``"log"`` (then ``0 < low < high``).
    """

    name: str
    low: float
    high: float
    scale: Scale = "linear"

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name.isidentifier():
            raise SpaceError(
                f"input name {self.name!r} is not a valid identifier; use letters, digits and "
                "underscores, not starting with a digit (e.g. 'inlet_velocity')"
            )
        for field in ("low", "high"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
                raise SpaceError(f"input {self.name!r}: {field} = {value!r} must be a number")
            if not math.isfinite(float(value)):
                raise SpaceError(f"input {self.name!r}: {field} = {value!r} must be finite (not NaN or inf)")
            object.__setattr__(self, field, float(value))
        if self.scale not in ("linear", "log"):
            raise SpaceError(f"input {self.name!r}: scale = {self.scale!r}; expected 'linear' or 'log'")
        if not self.low < self.high:
            raise SpaceError(
                f"input {self.name!r}: low = {self.low!r} must be smaller than high = {self.high!r}; "
                "swap the bounds or widen the interval"
            )
        if self.scale == "log" and self.low <= 0.0:
            raise SpaceError(
                f"input {self.name!r}: low = {self.low!r} on a log scale must be > 0; "
                "use scale = 'linear' or a positive lower bound"
            )

    def to_unit(self, x: NDArray[np.float64]) -> NDArray[np.float64]:
        """Map values in the scientist's units to ``[0, 1]`` (elementwise)."""
        if self.scale == "log":
            lo, hi = math.log(self.low), math.log(self.high)
            with np.errstate(divide="ignore", invalid="ignore"):
                return (np.log(x) - lo) / (hi - lo)
        return (x - self.low) / (self.high - self.low)

    def from_unit(self, u: NDArray[np.float64]) -> NDArray[np.float64]:
        """Map values in ``[0, 1]`` to the scientist's units (elementwise)."""
        if self.scale == "log":
            lo, hi = math.log(self.low), math.log(self.high)
            x = np.exp(lo + u * (hi - lo))
        else:
            x = self.low + u * (self.high - self.low)
        # Round-off can push exp(log(high)) a hair past the bound; keep the box closed.
        return np.clip(x, self.low, self.high) if np.all((u >= 0) & (u <= 1)) else x

    def to_dict(self) -> dict[str, Any]:
        """The dimension as plain data (for stores and workflow files)."""
        return {"name": self.name, "low": self.low, "high": self.high, "scale": self.scale}


@dataclass(frozen=True)
class InputSpace:
    """An ordered collection of named, bounded dimensions.

    Args:
        dimensions: the inputs, in column order of every ``n x d`` array.

    Raises:
        SpaceError: no dimensions, or duplicate names.
    """

    dimensions: tuple[Dimension, ...]

    def __init__(self, dimensions: Iterable[Dimension]) -> None:
        dims = tuple(dimensions)
        if not dims:
            raise SpaceError("an input space needs at least one dimension")
        for dim in dims:
            if not isinstance(dim, Dimension):
                raise SpaceError(f"expected Dimension objects, got {type(dim).__name__}: {dim!r}")
        names = [d.name for d in dims]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise SpaceError(f"duplicate input names {duplicates}; every input needs its own name")
        object.__setattr__(self, "dimensions", dims)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_bounds(
        cls, bounds: Mapping[str, Sequence[float]], scales: Mapping[str, Scale] | None = None
    ) -> InputSpace:
        """Build a space from ``{"name": (low, high), ...}`` and optional scales."""
        scales = dict(scales or {})
        unknown = sorted(set(scales) - set(bounds))
        if unknown:
            raise SpaceError(f"scales given for unknown inputs {unknown}; known inputs: {sorted(bounds)}")
        dims = []
        for name, pair in bounds.items():
            if len(pair) != 2:
                raise SpaceError(f"input {name!r}: bounds {pair!r} must be a pair (low, high)")
            dims.append(Dimension(name, pair[0], pair[1], scales.get(name, "linear")))
        return cls(dims)

    @classmethod
    def from_dicts(cls, items: Iterable[Mapping[str, Any]]) -> InputSpace:
        """Inverse of :meth:`to_dicts`."""
        return cls(Dimension(**dict(item)) for item in items)

    def to_dicts(self) -> list[dict[str, Any]]:
        """The space as plain data (list of dimension dicts)."""
        return [d.to_dict() for d in self.dimensions]

    # -- properties ---------------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Input names, in column order."""
        return tuple(d.name for d in self.dimensions)

    @property
    def dim(self) -> int:
        """Number of inputs ``d``."""
        return len(self.dimensions)

    @property
    def lower(self) -> NDArray[np.float64]:
        """Lower bounds, shape ``d``."""
        return np.array([d.low for d in self.dimensions])

    @property
    def upper(self) -> NDArray[np.float64]:
        """Upper bounds, shape ``d``."""
        return np.array([d.high for d in self.dimensions])

    # -- validation and transforms --------------------------------------------------------
    def check_array(self, X: ArrayLike, what: str = "X") -> NDArray[np.float64]:
        """Return ``X`` as a finite float ``n x d`` array or raise a clear error.

        Args:
            X: ``n x d`` points (a single point of shape ``d`` is accepted as ``1 x d``).
            what: the name used in error messages.
        """
        arr = np.asarray(X, dtype=float)
        if arr.ndim == 1 and arr.shape[0] == self.dim:
            arr = arr[None, :]
        if arr.ndim != 2 or arr.shape[1] != self.dim:
            raise ShapeError(
                f"{what} has shape {arr.shape}; expected (n, {self.dim}) with columns {list(self.names)}"
            )
        if not np.all(np.isfinite(arr)):
            bad = np.argwhere(~np.isfinite(arr))[0]
            raise SpaceError(
                f"{what}[{bad[0]}, {bad[1]}] (input {self.names[bad[1]]!r}) is {arr[bad[0], bad[1]]}; "
                "inputs must be finite numbers"
            )
        return arr

    def to_unit(self, X: ArrayLike) -> NDArray[np.float64]:
        """Map ``n x d`` points in the scientist's units to the unit cube."""
        arr = self.check_array(X)
        return np.column_stack([d.to_unit(arr[:, j]) for j, d in enumerate(self.dimensions)])

    def from_unit(self, U: ArrayLike) -> NDArray[np.float64]:
        """Map ``n x d`` points in the unit cube to the scientist's units."""
        arr = self.check_array(U, "U")
        return np.column_stack([d.from_unit(arr[:, j]) for j, d in enumerate(self.dimensions)])

    def contains(self, X: ArrayLike, atol: float = 1e-12) -> NDArray[np.bool_]:
        """Whether each of ``n x d`` points lies inside the box; shape ``n``."""
        arr = self.check_array(X)
        span = self.upper - self.lower
        return np.all((arr >= self.lower - atol * span) & (arr <= self.upper + atol * span), axis=1)

    def to_records(self, X: ArrayLike) -> list[dict[str, float]]:
        """``n x d`` points as ``n`` dicts ``{name: value}`` (simulator inputs)."""
        arr = self.check_array(X)
        return [{name: float(v) for name, v in zip(self.names, row)} for row in arr]

    def from_records(self, records: Iterable[Mapping[str, float]]) -> NDArray[np.float64]:
        """Dicts ``{name: value}`` to an ``n x d`` array in column order."""
        rows = []
        for i, rec in enumerate(records):
            missing = [n for n in self.names if n not in rec]
            if missing:
                raise SpaceError(f"record {i} lacks inputs {missing}; expected keys {list(self.names)}")
            rows.append([float(rec[n]) for n in self.names])
        return self.check_array(np.array(rows, dtype=float).reshape(-1, self.dim), "records")

    # -- designs ------------------------------------------------------------------------
    def design_unit(self, kind: DesignKind, n: int, seed: int | None = None) -> NDArray[np.float64]:
        """A space-filling design of ``n`` points in the unit cube, ``n x d``.

        Args:
            kind: ``"sobol"`` (scrambled), ``"lhs"`` (Latin hypercube) or ``"random"``.
            n: number of points (>= 1).
            seed: seed for reproducibility.
        """
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise SpaceError(f"design size n = {n!r} must be a positive integer")
        if kind == "sobol":
            sampler = qmc.Sobol(self.dim, scramble=True, rng=np.random.default_rng(seed))
            with warnings.catch_warnings():
                # Balance properties need n = 2^k; any n is still a valid low-discrepancy prefix.
                warnings.simplefilter("ignore", UserWarning)
                return sampler.random(int(n))
        if kind == "lhs":
            return qmc.LatinHypercube(self.dim, rng=np.random.default_rng(seed)).random(int(n))
        if kind == "random":
            return np.random.default_rng(seed).random((int(n), self.dim))
        raise SpaceError(f"design kind {kind!r} is unknown; expected one of {list(DESIGN_KINDS)}")

    def design(self, kind: DesignKind, n: int, seed: int | None = None) -> NDArray[np.float64]:
        """A space-filling design of ``n`` points in the scientist's units, ``n x d``."""
        return self.from_unit(self.design_unit(kind, n, seed))

    def sobol(self, n: int, seed: int | None = None) -> NDArray[np.float64]:
        """Scrambled Sobol points in the scientist's units, ``n x d``."""
        return self.design("sobol", n, seed)

    def latin_hypercube(self, n: int, seed: int | None = None) -> NDArray[np.float64]:
        """Latin-hypercube points in the scientist's units, ``n x d``."""
        return self.design("lhs", n, seed)
