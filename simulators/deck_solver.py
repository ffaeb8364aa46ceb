"""A compiled simulation code driven by a text input deck, wrapped with ScriptSimulator.

Many scientific codes are executables that read an input deck and print their
results. ``deck_solver.c`` is a small one: a damped, harmonically driven
oscillator

    m x'' + c x' + k x = F0 cos(w t),  c = 2 zeta m w0,  k = m w0^2,  w = r w0,

integrated with the classical fourth-order Runge-Kutta method from rest. It
reads ``key = value`` lines from the file named by its only argument and prints
``key = value`` lines on stdout. ``deck_solver.tmpl`` is the input deck with
the varied inputs as ``${name}`` fields; the other entries are fixed (mass
1 kg, natural frequency w0 = 2 pi rad/s, 40 s in 40 000 steps).

Build it by hand::

    cc -O2 -o deck_solver deck_solver.c -lm

or with :func:`build` (which uses ``cc`` or ``gcc`` from ``PATH``), or
``python -m simulators.deck_solver DEST_DIR``. Then :func:`script_simulator`
returns the :class:`~surrogate_al.simulation.ScriptSimulator` that renders the
deck into each run directory, runs ``deck_solver deck.in`` there and parses the
``key = value`` lines of its stdout.

Inputs:

* ``damping_ratio`` zeta in [0.05, 0.5], log scale (dimensionless)
* ``frequency_ratio`` r = w / w0 in [0.5, 1.5] (dimensionless; resonance at 1)
* ``force_amplitude`` F0 in [0.5, 2] N

Outputs:

* ``amplitude`` (m): max |x| over the last two drive periods, the steady-state
  amplitude (F0 / k) / sqrt((1 - r^2)^2 + (2 zeta r)^2) once transients,
  which decay like exp(-zeta w0 t), are gone (after 40 s: by at least e^-12)
* ``x_final`` (m), ``v_final`` (m/s): the state at t = 40 s
* ``energy_final`` (J): kinetic plus potential energy at t = 40 s

:func:`reference` is a pure-Python reimplementation, operation for operation,
used to check the executable and the wrapper.

Reference: A. P. French, Vibrations and Waves, Norton, 1971, ch. 4 (forced
damped oscillator); E. Hairer, S. P. Nørsett and G. Wanner, Solving Ordinary
Differential Equations I, 2nd ed., Springer, 1993, sec. II.1 (Runge-Kutta).
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

from surrogate_al.errors import SimulatorError
from surrogate_al.simulation import ScriptSimulator
from surrogate_al.space import Dimension, InputSpace

__all__ = [
    "INPUTS",
    "OUTPUTS",
    "SOURCE",
    "TEMPLATE",
    "EXECUTABLE_NAME",
    "build",
    "script_simulator",
    "reference",
    "read_deck",
    "fixed_parameters",
    "oscillate",
]

logger = logging.getLogger(__name__)

INPUTS = InputSpace(
    [
        Dimension("damping_ratio", 0.05, 0.5, scale="log"),
        Dimension("frequency_ratio", 0.5, 1.5),
        Dimension("force_amplitude", 0.5, 2.0),
    ]
)
OUTPUTS: tuple[str, ...] = ("amplitude", "x_final", "v_final", "energy_final")

#: The C source and the input-deck template, shipped with the package.
SOURCE = Path(__file__).with_name("deck_solver.c")
TEMPLATE = Path(__file__).with_name("deck_solver.tmpl")
EXECUTABLE_NAME = "deck_solver"

# Keep in step with KEYS in deck_solver.c.
_DECK_KEYS = (
    "mass",
    "natural_frequency",
    "damping_ratio",
    "frequency_ratio",
    "force_amplitude",
    "x0",
    "v0",
    "t_end",
    "n_steps",
)


def _compiler() -> str:
    for name in ("cc", "gcc"):
        path = shutil.which(name)
        if path is not None:
            return path
    raise SimulatorError(
        "no C compiler (cc or gcc) on PATH; install one (e.g. 'apt-get install gcc') or build by hand: "
        f"cc -O2 -o {EXECUTABLE_NAME} {SOURCE} -lm"
    )


def build(dest_dir: str | os.PathLike[str]) -> Path:
    """Compile ``deck_solver.c`` into ``dest_dir/deck_solver``.

    Args:
        dest_dir: directory for the executable (created when missing).

    Returns:
        Absolute path of the executable.

    Raises:
        SimulatorError: no ``cc`` / ``gcc`` on ``PATH``, or the compiler failed
            (its stderr is in the message).
    """
    compiler = _compiler()
    dest = Path(dest_dir).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / EXECUTABLE_NAME
    # Compile under a private name, then rename: a concurrent build or a run
    # never sees a half-written executable.
    partial = dest / f".{EXECUTABLE_NAME}.{os.getpid()}.partial"
    argv = [compiler, "-O2", "-o", str(partial), str(SOURCE), "-lm"]
    logger.info("building %s: %s", target, argv)
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=300, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        partial.unlink(missing_ok=True)
        raise SimulatorError(f"cannot run the C compiler {argv}: {exc}") from exc
    if proc.returncode != 0:
        partial.unlink(missing_ok=True)
        raise SimulatorError(
            f"compiling {SOURCE.name} failed (exit code {proc.returncode}) with {argv}:\n{proc.stderr.strip()[-2000:]}"
        )
    os.replace(partial, target)
    return target


def script_simulator(
    executable: str | os.PathLike[str], workdir_root: str | os.PathLike[str], **kw: Any
) -> ScriptSimulator:
    """The ScriptSimulator that runs the compiled ``deck_solver`` once per point.

    Each run renders ``deck_solver.tmpl`` into ``deck.in`` in a fresh run
    directory under ``workdir_root``, runs ``EXECUTABLE deck.in`` there and
    parses the ``key = value`` lines of its stdout.

    Args:
        executable: path of the built executable (see :func:`build`); made absolute.
        workdir_root: directory for the per-run directories.
        **kw: further :class:`~surrogate_al.simulation.ScriptSimulator` keyword
            arguments (``timeout``, ``keep_workdirs``, ``env``, ...).

    Returns:
        A simulator with ``input_names = INPUTS.names`` and ``output_names = OUTPUTS``.

    Raises:
        SimulatorError: ``executable`` is not an executable file, or a bad ``kw``.
    """
    exe = Path(executable).resolve()
    if not (exe.is_file() and os.access(exe, os.X_OK)):
        raise SimulatorError(
            f"executable = {str(executable)!r} is not an executable file; build it first with "
            f"simulators.deck_solver.build(dest_dir) or: cc -O2 -o {EXECUTABLE_NAME} {SOURCE} -lm"
        )
    return ScriptSimulator(
        [str(exe), "{input}"],
        INPUTS.names,
        OUTPUTS,
        input_format="template",
        template=TEMPLATE,
        input_filename="deck.in",
        output_format="keyvalue",
        workdir_root=workdir_root,
        **kw,
    )


def read_deck(text: str) -> dict[str, str]:
    """The ``key = value`` entries of an input deck, as ``deck_solver.c`` reads them.

    ``#`` starts a comment; blank lines are skipped; keys and values are stripped.

    Raises:
        SimulatorError: a line without ``=``, an unknown or repeated key.
    """
    entries: dict[str, str] = {}
    for lineno, line in enumerate(text.splitlines(), start=1):
        content = line.split("#", 1)[0].strip()
        if not content:
            continue
        key, sep, value = content.partition("=")
        key, value = key.strip(), value.strip()
        if not sep:
            raise SimulatorError(f"deck line {lineno}: expected 'key = value', got {content!r}")
        if key not in _DECK_KEYS:
            raise SimulatorError(f"deck line {lineno}: unknown key {key!r}; known keys: {', '.join(_DECK_KEYS)}")
        if key in entries:
            raise SimulatorError(f"deck line {lineno}: key {key!r} given twice")
        entries[key] = value
    return entries


def fixed_parameters() -> dict[str, float]:
    """The deck entries the template fixes (those that are not ``${name}`` fields)."""
    entries = read_deck(TEMPLATE.read_text(encoding="utf-8"))
    return {key: float(value) for key, value in entries.items() if "$" not in value}


def oscillate(
    *,
    mass: float,
    natural_frequency: float,
    damping_ratio: float,
    frequency_ratio: float,
    force_amplitude: float,
    x0: float,
    v0: float,
    t_end: float,
    n_steps: float,
) -> dict[str, float]:
    """Integrate the driven oscillator exactly as ``deck_solver.c`` does.

    Same formulas in the same order of operations, so on IEEE-754 doubles the
    results agree with the executable to round-off.

    Returns:
        ``{"amplitude", "x_final", "v_final", "energy_final"}``.
    """
    m = mass
    w0 = natural_frequency
    c = 2.0 * damping_ratio * m * w0
    k = m * w0 * w0
    f0 = force_amplitude
    w = frequency_ratio * w0
    x, v = x0, v0
    n = int(n_steps)
    dt = t_end / n
    window_start = t_end - 2.0 * (2.0 * math.pi / w)
    cos = math.cos

    def accel(t: float, x: float, v: float) -> float:
        return (f0 * cos(w * t) - c * v - k * x) / m

    amplitude = 0.0
    for i in range(n):
        t = i * dt
        k1x = v
        k1v = accel(t, x, v)
        k2x = v + 0.5 * dt * k1v
        k2v = accel(t + 0.5 * dt, x + 0.5 * dt * k1x, v + 0.5 * dt * k1v)
        k3x = v + 0.5 * dt * k2v
        k3v = accel(t + 0.5 * dt, x + 0.5 * dt * k2x, v + 0.5 * dt * k2v)
        k4x = v + dt * k3v
        k4v = accel(t + dt, x + dt * k3x, v + dt * k3v)
        x += dt / 6.0 * (k1x + 2.0 * k2x + 2.0 * k3x + k4x)
        v += dt / 6.0 * (k1v + 2.0 * k2v + 2.0 * k3v + k4v)
        if (i + 1) * dt >= window_start and abs(x) > amplitude:
            amplitude = abs(x)
    return {
        "amplitude": amplitude,
        "x_final": x,
        "v_final": v,
        "energy_final": 0.5 * m * v * v + 0.5 * k * x * x,
    }


def reference(*, damping_ratio: float, frequency_ratio: float, force_amplitude: float) -> dict[str, float]:
    """What the executable should print for these inputs and the template's fixed entries.

    Args:
        damping_ratio: zeta, in [0.05, 0.5].
        frequency_ratio: w / w0, in [0.5, 1.5].
        force_amplitude: F0 in N, in [0.5, 2].

    Returns:
        ``{"amplitude", "x_final", "v_final", "energy_final"}``.
    """
    params = {
        **fixed_parameters(),
        "damping_ratio": damping_ratio,
        "frequency_ratio": frequency_ratio,
        "force_amplitude": force_amplitude,
    }
    return oscillate(**params)


if __name__ == "__main__":
    if len(sys.argv) != 2:
        usage = f"usage: python -m simulators.deck_solver DEST_DIR  (compiles {SOURCE.name} into DEST_DIR)"
        print(usage, file=sys.stderr)
        raise SystemExit(2)
    try:
        print(build(sys.argv[1]))
    except SimulatorError as exc:
        print(f"python -m simulators.deck_solver: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
