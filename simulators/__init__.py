"""Wrapped simulators: analytic benchmarks, physics solvers and a compiled example.

Every simulator is a module ``simulators.NAME`` with the same small contract:

* ``INPUTS``: a :class:`surrogate_al.space.InputSpace` (names, bounds, scales);
* ``OUTPUTS``: a tuple of output names;
* ``run(**inputs) -> dict[str, float]``: one evaluation, named inputs as keyword
  arguments, named outputs back;
* a module docstring giving the inputs (units, bounds), the outputs and the
  physics or mathematics with a reference;
* ``python -m simulators.NAME input.json output.json``: the same evaluation as a
  script (see :mod:`simulators._cli`), for use through
  :class:`surrogate_al.simulation.ScriptSimulator` or by hand.

In a workflow file a registered simulator is used as
``function = "simulators.NAME:run"``.

Analytic benchmarks (microseconds a run): ``branin``, ``ishigami``,
``hartmann6``, ``borehole``, ``friedman``, ``sharp_peak``. Physics solvers
(0.1-0.4 s a run): ``burgers``, ``heat2d``, ``ignition``. ``sleepy`` is cheap
but sleeps for an uneven, log-normal time: for throughput tests.

:mod:`simulators.deck_solver` is not in the registry: it is an external C
executable driven through a text input deck, so it has no in-process ``run``;
it shows how to wrap such a code with ``ScriptSimulator``.

Non-physical inputs make the physics solvers raise
:class:`~surrogate_al.errors.DataError` naming the input; a numerical failure
raises :class:`SolverError`. Under a PythonSimulator both become failed runs.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType

from simulators._checks import SolverError
from surrogate_al.errors import ConfigError, SimulatorError
from surrogate_al.space import InputSpace

__all__ = ["SIMULATORS", "SolverError", "available", "load"]

#: Registered simulators: name -> importable module path.
SIMULATORS: dict[str, str] = {
    "branin": "simulators.branin",
    "ishigami": "simulators.ishigami",
    "hartmann6": "simulators.hartmann6",
    "borehole": "simulators.borehole",
    "friedman": "simulators.friedman",
    "sharp_peak": "simulators.sharp_peak",
    "burgers": "simulators.burgers",
    "heat2d": "simulators.heat2d",
    "ignition": "simulators.ignition",
    "sleepy": "simulators.sleepy",
}


def available() -> tuple[str, ...]:
    """Names of the registered simulators, sorted."""
    return tuple(sorted(SIMULATORS))


def load(name: str) -> ModuleType:
    """Import a registered simulator module and check its contract.

    Modules are imported on demand (not when this package is imported) so that
    ``python -m simulators.NAME`` does not find its own module half-imported
    and a campaign only loads what it uses.

    Args:
        name: a registered name, e.g. ``"branin"``.

    Returns:
        The module, with ``INPUTS``, ``OUTPUTS`` and ``run``.

    Raises:
        ConfigError: ``name`` is not registered (the message lists the known names).
        SimulatorError: the module breaks the contract (missing or mistyped
            ``INPUTS`` / ``OUTPUTS`` / ``run``).
    """
    if not isinstance(name, str) or name not in SIMULATORS:
        raise ConfigError(
            f"unknown simulator {name!r}; known simulators: {', '.join(available())} "
            "(or wrap your own code with surrogate_al.simulation.PythonSimulator / ScriptSimulator)"
        )
    module = importlib.import_module(SIMULATORS[name])
    _check_contract(name, module)
    return module


def _check_contract(name: str, module: ModuleType) -> None:
    inputs = getattr(module, "INPUTS", None)
    if not isinstance(inputs, InputSpace):
        raise SimulatorError(
            f"simulator {name!r} ({module.__name__}): INPUTS must be a surrogate_al.space.InputSpace, "
            f"got {type(inputs).__name__}"
        )
    outputs = getattr(module, "OUTPUTS", None)
    if not (isinstance(outputs, tuple) and outputs and all(isinstance(o, str) and o.isidentifier() for o in outputs)):
        raise SimulatorError(
            f"simulator {name!r} ({module.__name__}): OUTPUTS must be a non-empty tuple of identifier "
            f"strings, got {outputs!r}"
        )
    run: Callable[..., object] | None = getattr(module, "run", None)
    if not callable(run):
        raise SimulatorError(f"simulator {name!r} ({module.__name__}): run(**inputs) is missing or not callable")
