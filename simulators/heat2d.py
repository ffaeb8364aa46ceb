"""2-D steady heat conduction in a square plate made of four materials.

Solves -div(k grad T) = q on the plate [0, 1] x [0, 1] m (per metre of depth)
with

* the left edge (x = 0) held at ``t_left``, the right edge (x = 1) at 300 K,
* the bottom and top edges (y = 0, y = 1) insulated (no heat flux),
* a uniform volumetric heat source q (Joule or radiogenic heating, say),
* a piecewise-constant conductivity k: one value per quadrant, the quadrants
  split at x = 0.5 and y = 0.5.

Heat enters or leaves through the two held edges only, so in steady state
(heat out through the right edge) - (heat in through the left edge) = q x area.
With a strong source the hottest point sits inside the plate, on the side of
the less conductive quadrants; with no source the maximum is ``t_left`` (the
maximum principle).

Inputs:

* ``k_sw``, ``k_se``, ``k_nw``, ``k_ne`` in [0.1, 10] W/(m K), log scale:
  conductivities of the south-west (x < 0.5, y < 0.5), south-east, north-west
  and north-east quadrants (0.1: insulating brick; 10: a poor metal or rock
  near the top of the range)
* ``source`` q in [0, 500] W/m^3: uniform heat source
* ``t_left`` in [300, 400] K: temperature of the left edge

Outputs:

* ``t_max`` (K): maximum temperature over the plate (cell centres and the two
  held edges)
* ``t_mean`` (K): area-averaged temperature
* ``heat_flux_right`` (W/m, per metre of depth): heat leaving through the right
  edge (negative when heat flows in there)

Numerics: cell-centred finite volumes on an n x n grid (default 200 x 200, i.e.
40 000 unknowns), the quadrant boundaries on cell faces (n even), face
conductivities by the harmonic mean of the two cells (exact flux continuity
across a material jump), the held edges through half-cell distances. The
five-point system is assembled as a sparse matrix and solved directly with
``scipy.sparse.linalg.spsolve`` (SuperLU); a run takes about 0.15 s. Halving
the cell size changes the outputs by < 0.1 % over the box.

Reference: H. S. Carslaw and J. C. Jaeger, Conduction of Heat in Solids, 2nd
ed., Oxford, 1959; S. V. Patankar, Numerical Heat Transfer and Fluid Flow,
Hemisphere, 1980, ch. 4 (finite volumes, harmonic-mean interface
conductivity).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from numpy.typing import NDArray
from scipy.sparse.linalg import spsolve

from simulators import _checks
from simulators._checks import SolverError
from surrogate_al.space import Dimension, InputSpace

__all__ = ["INPUTS", "OUTPUTS", "run", "solve", "HeatSolution", "N_CELLS", "T_RIGHT"]

logger = logging.getLogger(__name__)

INPUTS = InputSpace(
    [
        Dimension("k_sw", 0.1, 10.0, scale="log"),
        Dimension("k_se", 0.1, 10.0, scale="log"),
        Dimension("k_nw", 0.1, 10.0, scale="log"),
        Dimension("k_ne", 0.1, 10.0, scale="log"),
        Dimension("source", 0.0, 500.0),
        Dimension("t_left", 300.0, 400.0),
    ]
)
OUTPUTS: tuple[str, ...] = ("t_max", "t_mean", "heat_flux_right")

#: Default number of cells along each edge.
N_CELLS = 200
#: Temperature of the right edge (K).
T_RIGHT = 300.0


@dataclass(frozen=True)
class HeatSolution:
    """The temperature field and the quantities derived from it.

    Attributes:
        x: cell-centre x coordinates, shape ``n``.
        y: cell-centre y coordinates, shape ``n``.
        temperature: cell temperatures, ``n x n`` indexed ``[i (x), j (y)]``.
        heat_in_left: heat entering through the left edge (W/m).
        heat_out_right: heat leaving through the right edge (W/m).
        outputs: ``{"t_max", "t_mean", "heat_flux_right"}``.
    """

    x: NDArray[np.float64]
    y: NDArray[np.float64]
    temperature: NDArray[np.float64]
    heat_in_left: float
    heat_out_right: float
    outputs: dict[str, float]


def _harmonic(a: NDArray[np.float64], b: NDArray[np.float64]) -> NDArray[np.float64]:
    return 2.0 * a * b / (a + b)


def solve(
    k_sw: float,
    k_se: float,
    k_nw: float,
    k_ne: float,
    source: float,
    t_left: float,
    *,
    n_cells: int = N_CELLS,
) -> HeatSolution:
    """Assemble and solve the steady conduction problem.

    Args:
        k_sw: conductivity of the south-west quadrant (W/(m K)), > 0.
        k_se: conductivity of the south-east quadrant, > 0.
        k_nw: conductivity of the north-west quadrant, > 0.
        k_ne: conductivity of the north-east quadrant, > 0.
        source: uniform volumetric heat source (W/m^3).
        t_left: temperature of the left edge (K).
        n_cells: cells along each edge (resolution, not a physical input); even,
            so the quadrant boundaries fall on cell faces.

    Returns:
        The temperature field and the outputs.

    Raises:
        DataError: a conductivity <= 0, a non-finite input, or ``n_cells`` odd or < 2.
        SolverError: the linear solve returned non-finite temperatures.
    """
    k_sw, k_se = _checks.positive("k_sw", k_sw), _checks.positive("k_se", k_se)
    k_nw, k_ne = _checks.positive("k_nw", k_nw), _checks.positive("k_ne", k_ne)
    q = _checks.finite("source", source)
    t_left = _checks.finite("t_left", t_left)
    n = _checks.resolution("n_cells", n_cells, 2, even=True)

    h = 1.0 / n
    centres = (np.arange(n) + 0.5) * h
    west = (centres < 0.5)[:, None]
    south = (centres < 0.5)[None, :]
    k = np.where(west, np.where(south, k_sw, k_nw), np.where(south, k_se, k_ne))  # n x n, [i (x), j (y)]

    # Transmissibility of a face = k_face * (face length h) / (centre distance h) = k_face.
    tx = _harmonic(k[:-1, :], k[1:, :])  # faces between cells (i, j) and (i + 1, j)
    ty = _harmonic(k[:, :-1], k[:, 1:])  # faces between cells (i, j) and (i, j + 1)
    # A held edge is half a cell away from the first centre: transmissibility 2 k.
    t_w, t_e = 2.0 * k[0, :], 2.0 * k[-1, :]

    index = np.arange(n * n).reshape(n, n)
    diagonal = np.zeros((n, n))
    diagonal[:-1, :] += tx
    diagonal[1:, :] += tx
    diagonal[:, :-1] += ty
    diagonal[:, 1:] += ty
    diagonal[0, :] += t_w
    diagonal[-1, :] += t_e
    rhs = np.full((n, n), q * h * h)
    rhs[0, :] += t_w * t_left
    rhs[-1, :] += t_e * T_RIGHT

    # Diagonal, then each interior face twice (row i, column j and the mirror entry).
    west_cells, east_cells = index[:-1, :].ravel(), index[1:, :].ravel()
    south_cells, north_cells = index[:, :-1].ravel(), index[:, 1:].ravel()
    rows = np.concatenate([index.ravel(), west_cells, east_cells, south_cells, north_cells])
    cols = np.concatenate([index.ravel(), east_cells, west_cells, north_cells, south_cells])
    vals = np.concatenate([diagonal.ravel(), -tx.ravel(), -tx.ravel(), -ty.ravel(), -ty.ravel()])
    matrix = sp.csc_matrix((vals, (rows, cols)), shape=(n * n, n * n))
    temperature = spsolve(matrix, rhs.ravel()).reshape(n, n)
    if not np.all(np.isfinite(temperature)):
        raise SolverError(f"heat2d: the linear solve returned non-finite temperatures (n_cells={n})")

    heat_in_left = float(np.sum(t_w * (t_left - temperature[0, :])))
    heat_out_right = float(np.sum(t_e * (temperature[-1, :] - T_RIGHT)))
    outputs = {
        "t_max": float(max(temperature.max(), t_left, T_RIGHT)),
        "t_mean": float(temperature.mean()),
        "heat_flux_right": heat_out_right,
    }
    logger.debug("heat2d: n_cells=%d, heat in=%.6g W/m, out=%.6g W/m", n, heat_in_left, heat_out_right)
    return HeatSolution(
        x=centres,
        y=centres.copy(),
        temperature=temperature,
        heat_in_left=heat_in_left,
        heat_out_right=heat_out_right,
        outputs=outputs,
    )


def run(
    *, k_sw: float, k_se: float, k_nw: float, k_ne: float, source: float, t_left: float
) -> dict[str, float]:
    """Run the conduction solver at the default resolution.

    Args:
        k_sw: conductivity of the south-west quadrant, in [0.1, 10] W/(m K).
        k_se: conductivity of the south-east quadrant, in [0.1, 10] W/(m K).
        k_nw: conductivity of the north-west quadrant, in [0.1, 10] W/(m K).
        k_ne: conductivity of the north-east quadrant, in [0.1, 10] W/(m K).
        source: uniform heat source, in [0, 500] W/m^3.
        t_left: left-edge temperature, in [300, 400] K.

    Returns:
        ``{"t_max", "t_mean", "heat_flux_right"}``.
    """
    return solve(k_sw, k_se, k_nw, k_ne, source, t_left).outputs


if __name__ == "__main__":
    from simulators._cli import main

    raise SystemExit(main(INPUTS, OUTPUTS, run))
