"""``[simulator]``: what to run (a Python function or an external program), its inputs and outputs.

The rules of a script's settings (formats, file names, placeholders, output
patterns) come from :mod:`surrogate_al.simulation.rules`, the module the
script simulator checks its arguments with; the messages here name the
workflow field.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, StrictBool, StrictInt, StrictStr, model_validator

from surrogate_al.config.messages import FieldError, only_when, set_fields, show
from surrogate_al.config.values import (
    FREEZE,
    MODEL_CONFIG,
    THAW,
    ExistingFile,
    FrozenMap,
    Identifier,
    ModuleFunction,
    Number,
    PlainTable,
    RelativeFilename,
    ResolvedPath,
    Seconds,
    StringTable,
    list_not_string,
)
from surrogate_al.errors import SpaceError
from surrogate_al.simulation import rules
from surrogate_al.space import Dimension

__all__ = ["COMMAND_PLACEHOLDERS", "InputBounds", "SimulatorSpec"]

#: Placeholders a script command may use besides the input names.
COMMAND_PLACEHOLDERS: tuple[str, ...] = rules.PLACEHOLDERS

# What to do when a command names a file placeholder whose file the settings do not have.
_UNAVAILABLE_PLACEHOLDERS = {
    "input": "input_format = 'none' writes no input file; use input_format = 'json' or the input names",
    "output": "no output_filename is set (outputs are read from stdout); set output_filename",
}


class InputBounds(BaseModel):
    """One entry of ``[simulator.inputs]``: ``x1 = {low = 0, high = 1, scale = "linear"}``."""

    model_config = MODEL_CONFIG

    low: Number = Field(description="lower bound")
    high: Number = Field(description="upper bound")
    scale: Literal["linear", "log"] = Field(default="linear", description="'linear' or 'log' (needs low > 0)")


def _validate_inputs(value: Any) -> Any:
    """Check every bound through :class:`~surrogate_al.space.Dimension` so the rules live in one place."""
    for name, bounds in value.items():
        try:
            Dimension(name, bounds.low, bounds.high, bounds.scale)
        except SpaceError as exc:
            # Dimension prefixes its messages with "input 'x1': "; our path already names the input.
            raise FieldError(str(exc).removeprefix(f"input {name!r}: "), (name,)) from exc
    return value


_SCRIPT_ONLY = (
    "command",
    "input_format",
    "template",
    "input_filename",
    "output_format",
    "output_filename",
    "output_regex",
    "parse",
    "env",
    "kill_grace",
)


class SimulatorSpec(BaseModel):
    """``[simulator]``: what to run (a Python function or an external program), its inputs and outputs."""

    model_config = MODEL_CONFIG

    kind: Literal["python", "script"] = Field(description="'python' (a function) or 'script' (a program)")
    function: ModuleFunction | None = Field(default=None, description="python kind: 'module:function'")
    command: Annotated[
        tuple[StrictStr, ...] | None, list_not_string('["python", "sim.py", "{input}", "{output}"]')
    ] = Field(default=None, description='script kind: program and arguments, e.g. ["python", "sim.py", "{input}"]')
    input_format: rules.InputFormat = Field(default="json", description="how inputs are written")
    template: ExistingFile | None = Field(default=None, description="template file (input_format = 'template')")
    input_filename: RelativeFilename | None = Field(
        default=None, description="input file name in the run dir (default: by input_format)"
    )
    output_format: rules.OutputFormat = Field(
        default="json", description="how outputs are read"
    )
    output_filename: RelativeFilename | None = Field(
        default=None, description="output file name in the run dir (default: by output_format)"
    )
    output_regex: Annotated[Mapping[StrictStr, StrictStr], FREEZE, THAW] | None = Field(
        default=None, description="output name -> pattern with one group (output_format = 'regex')"
    )
    parse: ModuleFunction | None = Field(default=None, description="'module:function' (output_format = 'parse')")
    env: StringTable = Field(default_factory=FrozenMap, description="extra environment variables")
    workdir: ResolvedPath | None = Field(default=None, description="root of per-run directories")
    keep_workdirs: StrictBool = Field(default=False, description="keep run directories of successful runs")
    kill_grace: Seconds = Field(default=5.0, description="seconds between SIGTERM and SIGKILL on timeout")
    timeout: Seconds | None = Field(default=None, gt=0, description="seconds before a run is killed")
    retries: StrictInt = Field(
        default=1,
        ge=0,
        description="extra attempts after a failed, timed-out or invalid run (a run that kills its worker gets "
        "1 + max(1, retries) tries)",
    )
    gpu: StrictBool = Field(default=False, description="runs need a GPU worker")
    deterministic: StrictBool = Field(
        default=False,
        description="the same inputs always give the same outputs (no noise); lets the acquisition localise a "
        "deep ensemble's covariances (acquisition.localisation)",
    )
    fixed_inputs: PlainTable = Field(default_factory=FrozenMap, description="constants passed to every run")
    inputs: Annotated[Mapping[StrictStr, InputBounds], AfterValidator(_validate_inputs), FREEZE, THAW] = Field(
        description="table of inputs, e.g. x1 = {low = 0, high = 1}"
    )
    outputs: Annotated[tuple[Identifier, ...], list_not_string("['y']")] = Field(
        description="names of the outputs, e.g. ['y']"
    )

    @model_validator(mode="after")
    def _check_consistency(self) -> SimulatorSpec:
        if not self.inputs:
            raise FieldError("no inputs; add at least one, e.g. x1 = {low = 0.0, high = 1.0}", ("inputs",))
        if not self.outputs:
            raise FieldError("no outputs; list at least one, e.g. outputs = ['y']", ("outputs",))
        duplicates = sorted({n for n in self.outputs if self.outputs.count(n) > 1})
        if duplicates:
            raise FieldError(f"duplicate names {duplicates}; every output needs its own name", ("outputs",))
        clash = sorted(set(self.outputs) & set(self.inputs))
        if clash:
            raise FieldError(f"names {clash} are both inputs and outputs; rename one of them", ("outputs",))
        self._check_fixed_inputs()
        if self.kind == "python":
            if self.function is None:
                raise FieldError(
                    "required for kind = 'python'; give 'module:function', e.g. 'mypackage.sims:branin'",
                    ("function",),
                )
            only_when(self, _SCRIPT_ONLY, "kind = 'script'")
        else:
            only_when(self, ("function",), "kind = 'python'")
            self._check_script()
        return self

    def _check_fixed_inputs(self) -> None:
        for name in self.fixed_inputs:
            if not name.isidentifier():
                raise FieldError(
                    f"{show(name)} is not a valid name; use letters, digits and underscores, not starting "
                    "with a digit",
                    ("fixed_inputs", name),
                )
            if name in self.inputs or name in self.outputs:
                raise FieldError(
                    f"{name!r} is also an input or output; a fixed input must have its own name", ("fixed_inputs", name)
                )

    def _check_script(self) -> None:
        if self.command is None:
            raise FieldError(
                "required for kind = 'script'; give the program and its arguments as an array, "
                'e.g. ["python", "sim.py", "{input}", "{output}"]',
                ("command",),
            )
        if not self.command:
            raise FieldError(
                "is empty (got []); give the program and its arguments, "
                'e.g. ["python", "sim.py", "{input}", "{output}"]',
                ("command",),
            )
        if not self.command[0].strip():
            raise FieldError("the program name is empty; give the program to run first, e.g. 'python'", ("command", 0))
        for section in ("inputs", "fixed_inputs"):
            for name in getattr(self, section):
                if name in rules.PLACEHOLDERS:
                    raise FieldError(
                        f"the name {name!r} is reserved for the command placeholder {{{name}}}; rename the input",
                        (section, name),
                    )
        self._check_files()
        self._check_output_parsing()
        self._check_command_placeholders()
        if self.env:
            for key in self.env:
                if not (rules.env_name_ok(key) and rules.env_value_ok(self.env[key])):
                    raise FieldError(
                        f"{show(key)} is not a usable environment variable; names must be non-empty "
                        "without '=' and values without NUL characters",
                        ("env", key),
                    )

    def _check_files(self) -> None:
        """Template and file names; fills the file-name defaults (they depend on the formats)."""
        if self.input_format == "template" and self.template is None:
            raise FieldError("required when input_format = 'template'; give the template file", ("template",))
        if self.input_format != "template":
            only_when(self, ("template",), "input_format = 'template'")
        if self.input_format == "none":
            only_when(self, ("input_filename",), "input_format is 'json' or 'template'", "input_format = 'json'")
        elif self.input_filename is None:
            set_fields(self, input_filename=rules.default_input_filename(self.input_format))
        if self.output_filename is None:
            set_fields(self, output_filename=rules.default_output_filename(self.output_format))
        if self.input_filename is not None and self.input_filename == self.output_filename:
            raise FieldError(
                f"equals input_filename (got {show(self.output_filename)}); the two files need different names",
                ("output_filename",),
            )
        for name in ("input_filename", "output_filename"):
            if getattr(self, name) in rules.WRAPPER_FILES:
                raise FieldError(
                    f"{show(getattr(self, name))} is taken by the wrapper's own log files "
                    f"({', '.join(rules.WRAPPER_FILES)}); use another name",
                    (name,),
                )

    def _check_command_placeholders(self) -> None:
        """Every {name} in the command must be something the simulator fills in for each run."""
        allowed = [*rules.PLACEHOLDERS, *self.inputs, *self.fixed_inputs]
        available = rules.available_placeholders(
            input_file=self.input_filename is not None, output_file=self.output_filename is not None
        )
        # {input}/{output} name files; without the file there is nothing to substitute.
        unavailable = {name: fix for name, fix in _UNAVAILABLE_PLACEHOLDERS.items() if name not in available}
        used: list[str] = []
        for i, arg in enumerate(self.command or ()):
            if "\x00" in arg:
                raise FieldError(f"contains a NUL character (got {show(arg)}); remove it", ("command", i))
            for name in _placeholders(arg, ("command", i)):
                used.append(name)
                if name in unavailable:
                    raise FieldError(f"placeholder {{{name}}} cannot be filled: {unavailable[name]}", ("command", i))
                if name not in allowed:
                    raise FieldError(
                        f"unknown placeholder {{{name}}} (got {show(arg)}); allowed: "
                        f"{', '.join('{' + a + '}' for a in allowed)}; write {{{{ and }}}} for literal braces",
                        ("command", i),
                    )
        # Without an input file the command line is the only way an input reaches the program.
        unused = rules.unused_inputs(self.inputs, used) if self.input_format == "none" else []
        if unused:
            raise FieldError(
                f"input_format = 'none' but inputs {unused} do not appear in the command, so the program would "
                "never see them; add {name} arguments, e.g. \"{" + unused[0] + "}\", or use input_format = 'json'",
                ("command",),
            )

    def _check_output_parsing(self) -> None:
        if self.output_format == "regex":
            if not self.output_regex:
                raise FieldError(
                    "required when output_format = 'regex'; give one pattern per output, "
                    "e.g. output_regex = { y = 'result: (\\S+)' }",
                    ("output_regex",),
                )
            for name, pattern in self.output_regex.items():
                if name not in self.outputs:
                    raise FieldError(
                        f"{name!r} is not an output; patterns are keyed by the names in outputs = "
                        f"{list(self.outputs)}",
                        ("output_regex", name),
                    )
                try:
                    groups = rules.regex_groups(pattern)
                except re.error as exc:
                    raise FieldError(
                        f"pattern {show(pattern)} does not compile ({exc}); fix the regular expression",
                        ("output_regex", name),
                    ) from exc
                if groups != rules.REGEX_GROUPS:
                    raise FieldError(
                        f"pattern {show(pattern)} has {groups} capture groups; it needs exactly one group "
                        "around the number, e.g. 'result: (\\S+)' (use (?:...) for other groups)",
                        ("output_regex", name),
                    )
            missing = [n for n in self.outputs if n not in self.output_regex]
            if missing:
                raise FieldError(f"no pattern for outputs {missing}; add one per output", ("output_regex",))
        else:
            only_when(self, ("output_regex",), "output_format = 'regex'")
        if self.output_format == "parse":
            if self.parse is None:
                raise FieldError(
                    "required when output_format = 'parse'; give 'module:function' that reads the run "
                    "directory, e.g. 'mypackage.io:read_outputs'",
                    ("parse",),
                )
        else:
            only_when(self, ("parse",), "output_format = 'parse'")


def _placeholders(arg: str, path: tuple[str | int, ...]) -> list[str]:
    """Names of the ``{placeholders}`` in one command argument (str.format syntax)."""
    try:
        fields = [f for f in rules.command_fields(arg) if f.name is not None]
    except ValueError as exc:
        raise FieldError(
            f"bad braces in {show(arg)} ({exc}); write {{name}} for a placeholder and {{{{ }}}} for literal braces",
            path,
        ) from exc
    for field in fields:
        name = field.name
        if not name.isidentifier():
            raise FieldError(
                f"placeholder {{{name}}} in {show(arg)} is not a plain name; use e.g. {{input}} or {{x1}}", path
            )
        if not rules.plain_field(field):
            raise FieldError(
                f"placeholder {{{name}}} in {show(arg)} uses a conversion or a nested field; only {{name}} and "
                "{name:format} (e.g. {x1:.6e}) are allowed",
                path,
            )
        problem = rules.spec_error(field.spec) if field.spec else ""
        if problem:
            raise FieldError(
                f"format spec {show(field.spec)} of {{{name}}} in {show(arg)} cannot format a number ({problem}); "
                "use e.g. {x1:.6e}",
                path,
            )
    return [field.name for field in fields]
