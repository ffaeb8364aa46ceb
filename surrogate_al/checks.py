"""``surrogate-al check``: every problem of a workflow at once, and one simulator call on request.

Nothing here starts a cluster or writes a store. The configuration problems
come from :func:`surrogate_al.config.check_workflow` (one line each); the
simulator checks go further than loading does: the script's program must
exist and be executable where the driver runs, and a Python simulator's
functions must import. :func:`run_one` calls the simulator once, at the
centre of the input box (in unit-cube coordinates, so a log-scaled input gets
its geometric centre), in a temporary directory that is removed afterwards.
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from surrogate_al.config import WorkflowSpec, check_workflow
from surrogate_al.errors import SimulatorError
from surrogate_al.simulation import SimulationResult
from surrogate_al.simulation.base import resolve_callable
from surrogate_al.simulation.result import clip, exception_reason

__all__ = ["OneRun", "run_failure_line", "run_one", "simulator_problems", "workflow_problems"]

logger = logging.getLogger(__name__)


def workflow_problems(path: str | os.PathLike[str]) -> tuple[WorkflowSpec | None, list[str]]:
    """Every problem of the workflow file ``path``, one line each (``file: field: what; fix``).

    The simulator is checked once the configuration itself is valid.

    Returns:
        The spec (None when the configuration is invalid) and the problems.
    """
    spec, errors = check_workflow(path)
    problems = [str(e) for e in errors]
    if spec is not None:
        problems += simulator_problems(spec, os.fspath(path))
    return spec, problems


def simulator_problems(spec: WorkflowSpec, source: str) -> list[str]:
    """What keeps the simulator from running here: a missing or non-executable program, an import that fails."""
    sim = spec.simulator
    if sim.kind == "script":
        problem = _program_problem(spec)
        problems = [f"{source}: simulator.command[0]: {problem}"] if problem else []
    else:
        problems = []
        if sim.function is not None:
            problem = _python_function_problem(spec)
            problems += [f"{source}: simulator.function: {problem}"] if problem else []
    if sim.output_format == "parse" and sim.parse is not None:
        problem = _import_problem(sim.parse)
        problems += [f"{source}: simulator.parse: {problem}"] if problem else []
    return problems


def _program_problem(spec: WorkflowSpec) -> str:
    """Why ``command[0]`` cannot be started, resolved as :class:`ScriptSimulator` resolves it ("" if it can)."""
    sim = spec.simulator
    program = (sim.command or ("",))[0]
    if "{" in program:
        return ""  # filled in per run: nothing to look at before a run
    if "/" not in program:
        search = (sim.env or {}).get("PATH", os.environ.get("PATH", os.defpath))
        if shutil.which(program, path=search) is None:
            return (
                f"{program!r} is not on PATH ({clip(search, 200)}); install it, give its absolute path, "
                "or set simulator.env.PATH"
            )
        return ""
    # A relative program path is taken from the driver's current directory (ScriptSimulator).
    resolved = Path(os.path.abspath(program))
    if not resolved.exists():
        beside = Path(spec.workflow_dir) / program
        hint = (
            f"; it exists relative to the workflow file ({beside}), but a relative program path is taken from "
            "the current directory: give its absolute path"
            if beside.exists()
            else "; give the path of an existing program"
        )
        where = "" if os.path.isabs(program) else f" (relative to the current directory {os.getcwd()})"
        return f"{program!r} does not exist{where}{hint}"
    if resolved.is_dir():
        return f"{program!r} is a directory; give the program to run"
    if not os.access(resolved, os.X_OK):
        return (
            f"{program!r} is not executable; chmod +x {resolved}, or run it through its interpreter "
            f'(command = ["python", "{resolved}", ...])'
        )
    return ""


def _import_problem(ref: str) -> str:
    """Why ``module:function`` does not import here ("" when it does)."""
    try:
        resolve_callable(ref)
    except Exception as exc:  # importing runs user code: anything can come out
        return (
            f"cannot import {ref!r} ({exception_reason('', exc)}); make the module importable where the driver "
            "and the workers run (install it, or add its directory to PYTHONPATH)"
        )
    return ""


def _python_function_problem(spec: WorkflowSpec) -> str:
    """Why the Python simulator's function cannot be imported or called with the inputs ("" when it can)."""
    from surrogate_al.simulation import PythonSimulator

    sim = spec.simulator
    assert sim.function is not None
    problem = _import_problem(sim.function)
    if problem:
        return problem
    try:
        PythonSimulator(
            resolve_callable(sim.function), spec.space().names, tuple(sim.outputs),
            fixed_inputs=dict(sim.fixed_inputs or {}) or None,
        )
    except SimulatorError as exc:
        return str(exc)
    return ""


@dataclass(frozen=True)
class OneRun:
    """One simulator call made by :func:`run_one`.

    Attributes:
        inputs: input name -> value (the centre of the box).
        result: what the simulator returned.
    """

    inputs: dict[str, float]
    result: SimulationResult


def run_one(spec: WorkflowSpec) -> OneRun:
    """Call the simulator once at the centre of the input box, in a temporary directory.

    A script simulator's run directory goes below the temporary directory; a
    Python simulator is called with the temporary directory as its current
    directory. Either way the directory is removed afterwards.

    Raises:
        SimulatorError: the simulator cannot be built (its configuration is refused).
    """
    from surrogate_al.campaign.build import build_simulator

    space = spec.space()
    values = space.from_unit(np.full((1, space.dim), 0.5))[0]
    inputs = {name: float(v) for name, v in zip(space.names, values)}
    with tempfile.TemporaryDirectory(prefix="surrogate-al-check-") as tmp:
        simulator_spec = spec.simulator.model_copy(update={"workdir": str(Path(tmp) / "runs")})
        simulator = build_simulator(spec.model_copy(update={"simulator": simulator_spec}), space)
        with _working_directory(Path(tmp) if spec.simulator.kind == "python" else None):
            result = simulator(inputs, run_id="check")
    logger.info("check run: %s in %.2f s", result.status, result.wall_time)
    return OneRun(inputs=inputs, result=result)


@contextlib.contextmanager
def _working_directory(path: Path | None) -> Iterator[None]:
    """Run the block in ``path`` (no change for None); the previous directory comes back after."""
    if path is None:
        yield
        return
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)


def run_failure_line(source: str, result: SimulationResult) -> str:
    """The one line that says why the test run failed, with the end of its stderr."""
    stderr = " ".join(result.stderr_tail.strip().splitlines()[-3:])
    said = f"; stderr ends: {clip(stderr, 300)}" if stderr else ""
    return f"{source}: the test run failed: {result.reason}{said}"

