"""Simulators that run an external script or executable once per point.

:class:`ScriptSimulator` writes the inputs into a file (JSON, or a text input
deck rendered from a template) in a fresh run directory, runs the command as an
argument list (never a shell), enforces a timeout by killing the whole process
group, and parses the outputs (JSON, CSV, ``key = value`` lines, regular
expressions, or a user function). POSIX only (process groups, ``os.killpg``).
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import traceback
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from surrogate_al.errors import SimulatorError
from surrogate_al.simulation.arguments import (
    check_env,
    check_nonnegative,
    check_positive_int,
    check_relative_filename,
    check_workdir_root,
    format_fields,
    load_template,
)
from surrogate_al.simulation.base import NamedSimulator, check_callable_ref
from surrogate_al.simulation.formats import (
    ParseFunction,
    call_parse,
    input_text,
    parse_output_text,
    template_fields,
)
from surrogate_al.simulation.process import (
    kill_recorded_groups,
    leader_start_time,
    signal_name,
    start_in_group,
    wait_and_reap,
)
from surrogate_al.simulation.result import (
    TAIL_BYTES,
    RunClock,
    SimulationResult,
    Status,
    clip,
    exception_reason,
    tail,
)
from surrogate_al.simulation.rules import (
    INPUT_FORMATS,
    OUTPUT_FORMATS,
    PLACEHOLDERS,
    REGEX_GROUPS,
    STDERR_FILE,
    STDOUT_FILE,
    WRAPPER_FILES,
    InputFormat,
    OutputFormat,
    available_placeholders,
    default_input_filename,
    default_output_filename,
    regex_groups,
    spec_error,
    unused_inputs,
)
from surrogate_al.simulation.rundir import (
    EXECUTIONS_FILE,
    make_run_dir,
    read_executions,
    read_output_file,
    read_stdout,
    read_tail,
    record_execution,
    write_new_file,
)

__all__ = ["ScriptSimulator"]

logger = logging.getLogger(__name__)


class ScriptSimulator(NamedSimulator):
    """A simulator that runs an external script or executable once per point.

    Each run gets its own directory ``workdir_root/<run_id>`` (the run id with
    every character outside ``[A-Za-z0-9._-]`` replaced by ``_``; created with
    ``exist_ok=False``, so a retry of the same run id, or a clash, gets a
    ``-retryN`` suffix and two runs never share a directory; every start appends a
    line to ``executions`` in the first directory of its run id, and kills the
    process group an earlier start of that run id left alive on this host, see
    :mod:`~surrogate_al.simulation.rundir`). The wrapper writes the
    inputs file there, runs ``command`` with that directory as the current
    directory, stdin from ``/dev/null`` and stdout / stderr into
    ``stdout.txt`` / ``stderr.txt`` there, then parses the outputs. The
    directory is removed after a successful run (unless ``keep_workdirs``) and
    kept after a failure or timeout, its path in the result.

    Args:
        command: the argument list, e.g. ``["python", "/abs/sim.py", "{input}",
            "--out", "{output}"]``. A plain string is rejected: there is no shell,
            so quoting and ``;`` / ``$(...)`` mean nothing. Each argument may hold
            placeholders in ``str.format`` syntax, ``{name}`` or ``{name:spec}``
            (``{x1:.6e}``): ``{input}`` / ``{output}`` (absolute paths of the
            input and output files), ``{workdir}`` (the run directory),
            ``{run_id}``, and any input or fixed input name. Values are inserted
            verbatim into that one argument; nothing is interpreted. ``command[0]``
            without a slash is looked up on ``PATH`` at run time; with a slash
            and relative, it is made absolute against the current directory at
            construction. Other relative paths in arguments are relative to the
            run directory (the child's working directory): pass absolute paths.
        input_names: names of the varied inputs.
        output_names: names of the outputs to parse.
        input_format: how inputs reach the script besides the command line:
            ``"json"`` (a JSON object ``{name: value}``, fixed inputs included,
            written to ``input_filename``), ``"template"`` (``template`` rendered
            into ``input_filename``), ``"none"`` (no input file; use ``{name}``
            placeholders). Default: ``"template"`` when a template is given, else
            ``"json"``.
        template: an input deck in :class:`string.Template` syntax: fields are
            ``${name}`` (or ``$name``), a literal dollar is ``$$``. Fields may be
            input names, fixed input names, ``run_id``, ``workdir`` and ``output``.
            A :class:`pathlib.Path`, or a string naming an existing file, is read
            as a file (once, at construction, so workers need not see it); any
            other string is the template text itself (a one-line string without
            ``$`` that names no file is rejected as a mistyped path). Unknown fields and inputs
            that reach the script neither through the template nor the command
            are rejected at construction.
        input_filename: file name (relative, inside the run directory) of the
            inputs file. Default ``"input.json"`` for JSON, ``"input.txt"``
            for a template.
        output_format: ``"json"`` (a JSON object file), ``"csv"`` (a
            comma-separated file with one header row and exactly one data row),
            ``"keyvalue"`` (``name = value`` lines; other lines are ignored; the
            last occurrence of a name wins), ``"regex"`` (``output_regex``), or
            ``"parse"`` (``parse``). ``keyvalue`` and ``regex`` read stdout unless
            ``output_filename`` is given, then that file. Numbers may use a
            Fortran ``D`` exponent (``1.5D+03``).
        output_filename: file (relative, inside the run directory) holding the
            outputs. Default ``"output.json"`` for JSON, ``"output.csv"`` for
            CSV, none (stdout) for ``keyvalue`` / ``regex`` / ``parse``.
        output_regex: for ``"regex"``: ``{output name: pattern}``, each pattern
            with exactly one capture group; applied with ``re.MULTILINE``; the
            last match wins (solvers print progress, the final value last).
        parse: for ``"parse"``: a callable or ``"module:function"`` called as
            ``parse(workdir: Path, stdout: str) -> dict``; an exception in it is an
            invalid run. ``{output}`` is available only when ``output_filename``
            is given.
        workdir_root: directory under which run directories are created (made
            absolute at construction; created when missing).
        keep_workdirs: keep the run directory after a successful run too.
        timeout: seconds before the run is stopped (``None``: no limit). On
            expiry the whole process group gets SIGTERM, then SIGKILL after
            ``kill_grace`` seconds; the result has status ``"timeout"``.
        env: extra environment variables (str to str) on top of the worker's
            ``os.environ``.
        fixed_inputs: values passed to every run (in the JSON, the template and
            as ``{name}`` placeholders).
        kill_grace: seconds between SIGTERM and SIGKILL on a timeout.
        max_output_bytes: size of the stdout / stderr tails kept in the result.
        max_parse_bytes: most bytes of stdout (its tail) or of an output file
            read for parsing; a larger output file is an invalid run. The
            program's stdout and stderr go to files in the run directory, never
            through a pipe into the worker, so their size does not reach the
            worker's memory: only these bounded tails are read back.

    Statuses:
        ``"failed"``: the program could not start, exited non-zero or was killed
        by a signal. ``"timeout"``: it ran past ``timeout``. ``"invalid"``: it
        exited 0 but its outputs are unusable: the output file was not written
        or is a symbolic link leading outside the run directory, malformed
        JSON/CSV, a missing name, NaN or inf, a list where a number belongs, a
        CSV of more than one data row, or ``parse`` raised. The reason names the
        output and what was wrong; failed and invalid runs keep their directory.

    Path confinement:
        Every file the wrapper writes or reads (inputs, outputs, ``stdout.txt``,
        ``stderr.txt``) lies inside the run's own directory: file names are
        relative without ``..`` (checked at construction), the run id is
        sanitized, the directory is new for every run, the inputs file is
        created with ``O_EXCL`` (never through a symbolic link), and an output
        path that resolves outside the directory (a symbolic link the program
        made) is not read. The program itself is not sandboxed: it can write
        wherever its user can.

    Raises:
        SimulatorError: any misconfiguration, with the offending argument named.

    Notes:
        POSIX only. The child runs in its own session (``start_new_session``);
        after it exits -- normally or not -- the whole process group is killed,
        so processes it left in the background do not survive. A process that
        deliberately escapes into its own session (a daemon) is out of reach.
    """

    def __init__(
        self,
        command: Sequence[str],
        input_names: Sequence[str],
        output_names: Sequence[str],
        *,
        input_format: InputFormat | None = None,
        template: str | os.PathLike[str] | None = None,
        input_filename: str | None = None,
        output_format: OutputFormat = "json",
        output_filename: str | None = None,
        output_regex: Mapping[str, str] | None = None,
        parse: ParseFunction | str | None = None,
        workdir_root: str | os.PathLike[str],
        keep_workdirs: bool = False,
        timeout: float | None = None,
        env: Mapping[str, str] | None = None,
        fixed_inputs: Mapping[str, Any] | None = None,
        kill_grace: float = 5.0,
        max_output_bytes: int = TAIL_BYTES,
        max_parse_bytes: int = 64 * 1024 * 1024,
    ) -> None:
        if os.name != "posix":
            raise SimulatorError("ScriptSimulator needs a POSIX system (process groups); use PythonSimulator here")
        self._init_names(input_names, output_names, fixed_inputs)
        reserved = sorted(set(PLACEHOLDERS) & (set(self.input_names) | set(self.fixed_inputs)))
        if reserved:
            raise SimulatorError(
                f"input names {reserved} collide with the command placeholders {list(PLACEHOLDERS)}; rename them"
            )
        self.timeout = self._check_timeout(timeout)
        self.kill_grace = check_nonnegative(kill_grace, "kill_grace")
        self.max_output_bytes = check_positive_int(max_output_bytes, "max_output_bytes")
        self.max_parse_bytes = check_positive_int(max_parse_bytes, "max_parse_bytes")
        self.keep_workdirs = bool(keep_workdirs)
        self.workdir_root = check_workdir_root(workdir_root)
        self.env = check_env(env)

        # -- inputs -----------------------------------------------------------------------
        if input_format is None:
            input_format = "template" if template is not None else "json"
        if input_format not in INPUT_FORMATS:
            raise SimulatorError(f"input_format = {input_format!r}; expected one of {list(INPUT_FORMATS)}")
        self.input_format: InputFormat = input_format
        self.template: str | None = None
        if input_format == "template":
            if template is None:
                raise SimulatorError("input_format = 'template' needs template= (a file path or the template text)")
            self.template = load_template(template)
        elif template is not None:
            raise SimulatorError(
                f"template given but input_format = {input_format!r}; pass input_format='template' or drop template"
            )
        if input_format == "none":
            if input_filename is not None:
                raise SimulatorError("input_filename given but input_format = 'none' writes no input file")
            self.input_filename: str | None = None
        else:
            self.input_filename = check_relative_filename(
                default_input_filename(input_format) if input_filename is None else input_filename, "input_filename"
            )

        # -- outputs ----------------------------------------------------------------------
        if output_format not in OUTPUT_FORMATS:
            raise SimulatorError(f"output_format = {output_format!r}; expected one of {list(OUTPUT_FORMATS)}")
        self.output_format: OutputFormat = output_format
        if output_filename is None:
            output_filename = default_output_filename(output_format)
        self.output_filename: str | None = (
            None if output_filename is None else check_relative_filename(output_filename, "output_filename")
        )
        self.output_regex: dict[str, str] | None = None
        if output_format == "regex":
            self.output_regex = self._check_regex(output_regex)
        elif output_regex is not None:
            raise SimulatorError(f"output_regex given but output_format = {output_format!r}; use output_format='regex'")
        self.parse: ParseFunction | str | None = None
        if output_format == "parse":
            if parse is None:
                raise SimulatorError("output_format = 'parse' needs parse= (a callable or 'module:function')")
            self.parse = check_callable_ref(parse, "parse")
        elif parse is not None:
            raise SimulatorError(f"parse given but output_format = {output_format!r}; use output_format='parse'")
        own = {*WRAPPER_FILES, EXECUTIONS_FILE}
        for what, name in (("input_filename", self.input_filename), ("output_filename", self.output_filename)):
            if name in own:
                raise SimulatorError(f"{what} = {name!r} is taken by the wrapper's own log files {sorted(own)}")
        if self.input_filename is not None and self.input_filename == self.output_filename:
            raise SimulatorError(f"input_filename and output_filename are both {self.input_filename!r}; use two files")

        # -- command ----------------------------------------------------------------------
        self.command = self._check_command(command)

    # -- construction checks ------------------------------------------------------------
    def _known_fields(self) -> set[str]:
        available = available_placeholders(
            input_file=self.input_filename is not None, output_file=self.output_filename is not None
        )
        return set(self.input_names) | set(self.fixed_inputs) | set(available)

    def _check_regex(self, output_regex: Any) -> dict[str, str]:
        if not isinstance(output_regex, Mapping):
            raise SimulatorError(
                "output_format = 'regex' needs output_regex = {output name: pattern with one group}, "
                f"got {output_regex!r}"
            )
        missing = [n for n in self.output_names if n not in output_regex]
        unknown = sorted(str(k) for k in set(output_regex) - set(self.output_names))
        if missing or unknown:
            raise SimulatorError(
                f"output_regex must have one pattern per output: missing {missing}, unknown {unknown} "
                f"(outputs: {list(self.output_names)})"
            )
        for name, pattern in output_regex.items():
            if not isinstance(pattern, str):
                raise SimulatorError(f"output_regex[{name!r}] = {pattern!r} must be a str pattern")
            try:
                groups = regex_groups(pattern)
            except re.error as exc:
                raise SimulatorError(f"output_regex[{name!r}] = {pattern!r} is not a valid regex: {exc}") from None
            if groups != REGEX_GROUPS:
                raise SimulatorError(
                    f"output_regex[{name!r}] = {pattern!r} has {groups} groups; it needs exactly one capture "
                    r"group around the number, e.g. r'drag = (\S+)' (use (?:...) for other groups)"
                )
        # Store the strings (compiled lazily, cached by re) so the simulator stays plain data.
        return {n: output_regex[n] for n in self.output_names}

    def _check_command(self, command: Any) -> tuple[str, ...]:
        if isinstance(command, (str, bytes)):
            raise SimulatorError(
                f"command = {command!r} is a string; give an argument list such as "
                f"{command.split() if isinstance(command, str) else ['prog', 'arg']!r} "
                "(there is no shell: each list item is one argument, passed verbatim)"
            )
        if not isinstance(command, Sequence) or not command:
            raise SimulatorError(f"command = {command!r} must be a non-empty list of strings")
        args = []
        for i, arg in enumerate(command):
            if isinstance(arg, os.PathLike):
                arg = os.fspath(arg)
            if not isinstance(arg, str):
                raise SimulatorError(f"command[{i}] = {arg!r} must be a str (convert numbers and paths with str())")
            if "\x00" in arg:
                raise SimulatorError(f"command[{i}] = {arg!r} contains a NUL byte")
            args.append(arg)
        known = self._known_fields()
        used: set[str] = set()
        for i, arg in enumerate(args):
            for field in format_fields(arg, f"command[{i}]"):
                name, spec = field.name, field.spec
                if name is None:
                    continue
                if name not in known:
                    hint = (
                        " ({input} needs an input file; input_format is 'none')"
                        if name == "input"
                        else " ({output} needs output_filename)"
                        if name == "output"
                        else ""
                    )
                    raise SimulatorError(
                        f"command[{i}] = {arg!r}: unknown placeholder {{{name}}}{hint}; known names: "
                        f"{sorted(known)} (attribute or index access is not allowed; write {{{{ for a literal brace)"
                    )
                problem = spec_error(spec) if spec else ""
                if problem:
                    raise SimulatorError(
                        f"command[{i}] = {arg!r}: format spec {spec!r} of {{{name}}} is invalid: {problem}"
                    )
                used.add(name)
        if self.template is not None:
            fields_ = template_fields(self.template, "template")
            unknown = sorted(set(fields_) - known)
            if unknown:
                raise SimulatorError(
                    f"template uses unknown fields {unknown}; known names: {sorted(known)} "
                    "(write $$ for a literal dollar sign)"
                )
            used.update(fields_)
            unused = unused_inputs(self.input_names, used)
            if unused:
                raise SimulatorError(
                    f"inputs {unused} appear neither in the template nor in the command, so the script would "
                    "never see them; add ${name} fields to the template or {name} arguments to the command"
                )
        if self.input_format == "none":
            unused = unused_inputs(self.input_names, used)
            if unused:
                raise SimulatorError(
                    f"input_format = 'none' but inputs {unused} do not appear in the command; "
                    "add {name} arguments or use input_format='json'"
                )
        first = args[0]
        if "/" in first and not os.path.isabs(first) and "{" not in first:
            # Relative to the driver's current directory, which is what the user sees when configuring.
            args[0] = os.path.abspath(first)
        elif "/" not in first and "{" not in first and shutil.which(first) is None:
            logger.warning("executable %r is not on PATH here; runs will fail unless workers have it", first)
        for i, arg in enumerate(args[1:], start=1):
            if "{" not in arg and not os.path.isabs(arg) and os.path.isfile(arg) and ("/" in arg or "." in arg):
                logger.warning(
                    "command[%d] = %r is a relative path to an existing file, but the command runs inside the "
                    "run directory; pass an absolute path",
                    i,
                    arg,
                )
        return tuple(args)

    def __repr__(self) -> str:
        return (
            f"ScriptSimulator(command={list(self.command)!r}, input_names={list(self.input_names)}, "
            f"output_names={list(self.output_names)}, input_format={self.input_format!r}, "
            f"output_format={self.output_format!r}, workdir_root={self.workdir_root!r})"
        )

    # -- a run ------------------------------------------------------------------------------
    def __call__(self, inputs: Mapping[str, Any], run_id: str | None = None) -> SimulationResult:
        """Run the command once; never raises for a failed run.

        Args:
            inputs: ``{input name: value}`` for every name in ``input_names``.
            run_id: names the run directory (sanitized) and fills ``{run_id}``;
                a unique id is generated when ``None``.
        """
        clock = RunClock()
        values, reason = self._merge_inputs(inputs)
        if reason:
            return clock.result("failed", reason=reason)
        run_id = f"run-{uuid.uuid4().hex[:12]}" if run_id is None else str(run_id)
        try:
            run_dir = make_run_dir(Path(self.workdir_root), run_id)
        except OSError as exc:
            return clock.result("failed", reason=exception_reason("cannot create a run directory: ", exc))
        # A start of a run id that was started before is Dask re-running it after its worker was
        # lost: what that start left running on this host must not run beside this one.
        kill_recorded_groups(read_executions(Path(self.workdir_root), run_id), f"run {run_id}")
        try:
            result = self._run_in(run_dir, run_id, values, clock)
        except Exception as exc:  # e.g. a full disk: must still come back as a result, directory kept
            logger.exception("run %s: the script wrapper failed", run_id)
            result = clock.result(
                "failed",
                reason=exception_reason("cannot run the command: ", exc),
                stderr_tail=tail(traceback.format_exc(), self.max_output_bytes),
                workdir=str(run_dir),
            )
        if result.ok and not self.keep_workdirs:
            try:
                shutil.rmtree(run_dir)
            except OSError as exc:  # the result stands; a leftover directory is only clutter
                logger.warning("run %s: cannot remove run directory %s: %s", run_id, run_dir, exc)
        return result

    def _record_start(self, run_id: str, run_dir: Path, pid: int) -> None:
        """Append this start to the run's ``executions`` (a failure is logged: the run goes on)."""
        try:
            n = record_execution(Path(self.workdir_root), run_id, run_dir, pid, leader_start_time(pid))
        except OSError as exc:
            logger.warning("run %s: cannot record its start in %s: %s", run_id, EXECUTIONS_FILE, exc)
            return
        if n > 1:
            logger.warning("run %s: started again (start %d of this run id, in %s)", run_id, n, run_dir)

    def _fields(self, run_dir: Path, run_id: str, values: Mapping[str, Any]) -> dict[str, Any]:
        names: dict[str, Any] = dict(values)
        names["workdir"] = str(run_dir)
        names["run_id"] = run_id
        if self.input_filename is not None:
            names["input"] = str(run_dir / self.input_filename)
        if self.output_filename is not None:
            names["output"] = str(run_dir / self.output_filename)
        return names

    def _write_inputs(self, run_dir: Path, names: Mapping[str, Any], values: Mapping[str, Any]) -> str:
        """Write the inputs file; ``""`` or the reason it failed."""
        if self.input_filename is None:
            return ""
        text, reason = input_text(self.input_format, values, names, self.template)
        return reason or write_new_file(run_dir, self.input_filename, text)

    def _render_command(self, names: Mapping[str, Any]) -> list[str]:
        argv = []
        for i, arg in enumerate(self.command):
            parts = []
            for field in format_fields(arg, f"command[{i}]"):
                parts.append(field.literal)
                if field.name is not None:
                    value = names[field.name]
                    # Verbatim: str() of the value, one argument, no interpretation.
                    parts.append(format(value, field.spec) if field.spec else str(value))
            argv.append("".join(parts))
        return argv

    def _run_in(self, run_dir: Path, run_id: str, values: Mapping[str, Any], clock: RunClock) -> SimulationResult:
        workdir = str(run_dir)
        names = self._fields(run_dir, run_id, values)
        reason = self._write_inputs(run_dir, names, values)
        if reason:
            return clock.result("failed", reason=reason, workdir=workdir)
        try:
            argv = self._render_command(names)
        except (ValueError, TypeError) as exc:
            return clock.result("failed", reason=exception_reason("cannot build the command: ", exc), workdir=workdir)
        env = {**os.environ, **self.env}
        if "/" not in argv[0]:
            exe = shutil.which(argv[0], path=env.get("PATH", os.defpath))
            if exe is None:
                return clock.result(
                    "failed",
                    reason=f"executable {argv[0]!r} not found on PATH ({clip(env.get('PATH', ''), 200)})",
                    workdir=workdir,
                )
            argv[0] = exe

        stdout_path, stderr_path = run_dir / STDOUT_FILE, run_dir / STDERR_FILE
        with open(stdout_path, "wb") as out, open(stderr_path, "wb") as err:
            try:
                proc = start_in_group(argv, cwd=run_dir, env=env, stdout=out, stderr=err)
            except (OSError, ValueError) as exc:
                return clock.result(
                    "failed", reason=exception_reason(f"cannot start {argv[0]!r}: ", exc), workdir=workdir
                )
            logger.debug("run %s: started pid %d: %s", run_id, proc.pid, argv)
            self._record_start(run_id, run_dir, proc.pid)
            timed_out = wait_and_reap(proc, self.timeout, self.kill_grace, run_id)

        stdout_tail, _ = read_tail(stdout_path, self.max_output_bytes)
        stderr_tail, _ = read_tail(stderr_path, self.max_output_bytes)

        def finish(status: Status, outputs: Mapping[str, float] | None = None, reason: str = "") -> SimulationResult:
            keep = status != "ok" or self.keep_workdirs
            return clock.result(
                status,
                outputs,
                reason,
                stdout_tail=stdout_tail,
                stderr_tail=stderr_tail,
                workdir=workdir if keep else None,
            )

        if timed_out:
            return finish("timeout", reason=f"timed out after {self.timeout} s")
        code = proc.returncode
        if code < 0:
            return finish("failed", reason=f"killed by signal {signal_name(code)} (exit code {code})")
        if code != 0:
            return finish("failed", reason=f"exit code {code}")
        outputs, reason = self._parse_outputs(run_dir, stdout_path)
        if reason:
            # Exit code 0, but the outputs are missing, malformed, NaN/inf or of the wrong shape.
            return finish("invalid", reason=reason)
        return finish("ok", outputs)

    def _parse_outputs(self, run_dir: Path, stdout_path: Path) -> tuple[dict[str, float], str]:
        if self.output_format == "parse":
            assert self.parse is not None
            return call_parse(self.parse, run_dir, read_stdout(stdout_path, self.max_parse_bytes), self.output_names)
        if self.output_filename is None:
            text, source = read_stdout(stdout_path, self.max_parse_bytes), "stdout"
        else:
            source = self.output_filename
            text, reason = read_output_file(run_dir, source, self.max_parse_bytes)
            if reason:
                return {}, reason
        return parse_output_text(self.output_format, text, source, self.output_names, self.output_regex)
