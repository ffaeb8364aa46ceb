"""Simulators: the expensive functions a campaign learns, and what one run returns.

* :class:`PythonSimulator` wraps a Python callable (or a ``"module:function"``
  string, imported lazily on the worker).
* :class:`ScriptSimulator` wraps an existing script or executable.

Every call returns a :class:`SimulationResult`; a failed run is data, never an
exception. Only misconfiguration at construction time raises
:class:`~surrogate_al.errors.SimulatorError`.
"""

from surrogate_al.simulation.base import Simulator
from surrogate_al.simulation.python import PythonSimulator
from surrogate_al.simulation.result import STATUSES, TAIL_BYTES, SimulationResult, Status
from surrogate_al.simulation.rules import PLACEHOLDERS, InputFormat, OutputFormat
from surrogate_al.simulation.script import ScriptSimulator

__all__ = [
    "Status",
    "STATUSES",
    "SimulationResult",
    "Simulator",
    "PythonSimulator",
    "ScriptSimulator",
    "InputFormat",
    "OutputFormat",
    "PLACEHOLDERS",
    "TAIL_BYTES",
]
