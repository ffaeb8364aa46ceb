"""Tests of surrogate_al.config: workflow files -> validated, frozen campaign spec."""

from __future__ import annotations

import copy
import json
import re
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel, ValidationError

from surrogate_al.config import (
    AcquisitionSpec,
    AdaptSpec,
    CampaignSpec,
    ClusterSpec,
    FrozenMap,
    InitialDesignSpec,
    InputBounds,
    LambdaScheduleSpec,
    SimulatorSpec,
    StopSpec,
    SurrogateSpec,
    TLSFiles,
    ValidationSpec,
    WorkflowSpec,
    load_workflow,
    parse_workflow,
    spec_from_dict,
)
from surrogate_al.errors import ConfigError

DATA = Path(__file__).parents[1] / "data"
GOOD = DATA / "workflows_good"
BAD = DATA / "workflows_bad"
DOCS = Path(__file__).resolve().parents[3] / "docs" / "workflow.md"

# file stem -> (the field path the message must name, a fragment saying what is wrong or how to fix it)
BAD_CASES: dict[str, tuple[str, str]] = {
    "missing_simulator_section": ("simulator", "missing required section [simulator]"),
    "missing_budget": ("campaign.budget", "missing required key; add budget = ... to [campaign]"),
    "budget_string": ("campaign.budget", "got 'ten', a string); expected an integer"),
    "budget_zero": ("campaign.budget", "must be >= 1 (got 0)"),
    "typo_campaign": ("campaign.budgett", "unknown key; did you mean 'budget'?"),
    "typo_simulator": ("simulator.timout", "did you mean 'timeout'?"),
    "typo_surrogate": ("surrogate.knd", "did you mean 'kind'?"),
    "typo_acquisition": ("acquisition.polcy", "did you mean 'policy'?"),
    "typo_cluster": ("cluster.worker", "did you mean 'workers'?"),
    "typo_validation": ("validation.fiel", "did you mean 'file'?"),
    "typo_input_bounds": ("simulator.inputs.x2.scal", "did you mean 'scale'? (known keys: low, high, scale)"),
    "typo_lambda_schedule": ("acquisition.lambda_schedule.strat", "did you mean 'start'?"),
    "unknown_section": ("surogate", "did you mean 'surrogate'?"),
    "bounds_reversed": ("simulator.inputs.x1", "low = 10.0 must be smaller than high = -5.0; swap the bounds"),
    "log_scale_nonpositive_low": ("simulator.inputs.x2", "on a log scale must be > 0"),
    "nan_bound": ("simulator.inputs.x1.low", "must be a finite number (got nan)"),
    "input_name_not_identifier": ('simulator.inputs."x 2"', "not a valid identifier"),
    "unknown_surrogate_kind": (
        "surrogate.kind",
        "'forest' is not a known surrogate kind; expected one of 'gp', 'ensemble', 'mc_dropout', 'auto'",
    ),
    "unknown_surrogate_option": ("surrogate.options.num_member", "did you mean 'num_members'?"),
    "surrogate_option_managed": ("surrogate.options.seed", "use campaign.seed"),
    "command_as_string": ("simulator.command", 'use a list, e.g. ["python", "sim.py", "{input}", "{output}"]'),
    "command_empty": ("simulator.command", "is empty (got [])"),
    "command_unknown_placeholder": ("simulator.command[3]", "unknown placeholder {outfile}"),
    "python_without_function": ("simulator.function", "required for kind = 'python'"),
    "python_with_command": ("simulator.command", "only used when kind = 'script'"),
    "script_with_function": ("simulator.function", "only used when kind = 'python'"),
    "function_not_module_colon_function": ("simulator.function", "is not of the form 'module:function'"),
    "unknown_lambda_kind": ("acquisition.lambda_schedule.kind", "'sigmoid' is not a known lambda_schedule kind"),
    "lambda_start_above_one": ("acquisition.lambda_schedule.start", "must be <= 1.0 (got 1.5)"),
    "pool_without_candidates": ("acquisition.candidates", "required when mode = 'pool'"),
    "missing_candidates_file": ("acquisition.candidates", "file not found"),
    "unknown_cluster_kind": ("cluster.kind", "'kubernetes' is not a known cluster kind"),
    "dashboard_public_without_allow_remote": ("cluster.dashboard", "set allow_remote = true"),
    "host_public_without_allow_remote": ("cluster.host", "set allow_remote = true"),
    "adapt_minimum_above_maximum": ("cluster.adapt.minimum", "minimum = 5 is larger than maximum = 2"),
    "address_kind_without_address": ("cluster.address", "required for kind = 'address'"),
    "jobqueue_key_on_local_cluster": ("cluster.jobs", "only used when kind is a batch-queue kind"),
    "tls_missing_files": ("cluster.tls.ca_file", "file not found"),
    "invalid_toml_syntax": ("line 4, column 8", "invalid TOML"),
    "duplicate_outputs": ("simulator.outputs", "duplicate names ['y']"),
    "outputs_empty": ("simulator.outputs", "no outputs"),
    "regex_without_group": ("simulator.output_regex.y", "has 0 capture groups; it needs exactly one"),
    "regex_format_without_patterns": ("simulator.output_regex", "required when output_format = 'regex'"),
    "missing_template_file": ("simulator.template", "file not found"),
    "missing_validation_file": ("validation.file", "file not found"),
    "bad_max_wall_time": ("campaign.stop.max_wall_time", "'2 hours' is not a duration"),
    "timeout_negative": ("simulator.timeout", "non-negative number of seconds (got -1)"),
    "concurrency_float": ("campaign.concurrency", "got 2.5, a float); expected an integer"),
    "count_failed_string": ("campaign.count_failed", "expected true or false"),
    "initial_design_larger_than_budget": ("campaign.initial_design.size", "size = 12 exceeds the budget = 10"),
    "gpu_runs_without_gpu_workers": ("simulator.gpu", "set cluster.worker_gpus >= 1"),
    "output_filename_absolute": ("simulator.output_filename", "must be a relative file name"),
}

MINIMAL: dict[str, Any] = {
    "campaign": {"budget": 20},
    "simulator": {
        "kind": "python",
        "function": "simulators.branin:run",
        "inputs": {"x1": {"low": -5.0, "high": 10.0}, "x2": {"low": 0.0, "high": 15.0}},
        "outputs": ["y"],
    },
}

SCRIPT: dict[str, Any] = {
    "campaign": {"budget": 20},
    "simulator": {
        "kind": "script",
        "command": ["python", "/opt/sim.py", "{input}", "{output}"],
        "inputs": {"x1": {"low": -5.0, "high": 10.0}},
        "outputs": ["y"],
    },
}


def with_changes(base: dict[str, Any], **sections: dict[str, Any]) -> dict[str, Any]:
    """A deep copy of ``base`` with keys of the named sections replaced or added."""
    data = copy.deepcopy(base)
    for section, values in sections.items():
        data.setdefault(section, {}).update(values)
    return data


def config_error(data: Any, base_dir: Path = Path("/nonexistent"), source: str = "wf.toml") -> str:
    """The message of the ConfigError that parse_workflow raises for ``data`` (checked to be one line)."""
    with pytest.raises(ConfigError) as info:
        parse_workflow(data, base_dir, source)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    assert message.startswith(f"{source}: ")
    return message


def message_path(message: str, source: str) -> str:
    """The field path of a '<file>: <path>: <message>' error."""
    assert message.startswith(f"{source}: "), message
    return message[len(source) + 2 :].split(": ", 1)[0]


def write_complete(tmp_path: Path) -> Path:
    """The complete good workflow copied next to the files it references."""
    path = tmp_path / "complete.toml"
    shutil.copy(GOOD / "complete.toml", path)
    (tmp_path / "sim.tmpl").write_text("k = ${conductivity}\nv = ${inlet_velocity}\nh = ${fin_height}\n")
    (tmp_path / "candidates.csv").write_text("conductivity,inlet_velocity,fin_height\n1.0,1.0,2.0\n10.0,2.0,3.0\n")
    (tmp_path / "validation.csv").write_text(
        "conductivity,inlet_velocity,fin_height,t_max,dp\n1.0,1.0,2.0,350.0,12.0\n"
    )
    return path


# --------------------------------------------------------------------------------------
# Broken workflows
# --------------------------------------------------------------------------------------
def test_bad_fixture_table_matches_the_files() -> None:
    stems = {p.stem for p in BAD.glob("*.toml")}
    assert stems == set(BAD_CASES)
    assert len(stems) >= 25


@pytest.mark.parametrize("name", sorted(BAD_CASES))
def test_broken_workflow_raises_one_line_config_error_naming_the_field(name: str) -> None:
    path, fragment = BAD_CASES[name]
    file = BAD / f"{name}.toml"
    with pytest.raises(ConfigError) as info:
        load_workflow(file)
    message = str(info.value)
    assert "\n" not in message and "\r" not in message
    assert message_path(message, str(file)) == path
    assert fragment in message


def test_error_messages_follow_the_documented_form() -> None:
    data = with_changes(MINIMAL, simulator={"inputs": {"x1": {"low": 10, "high": -5}}})
    assert config_error(data, source="quickstart.toml") == (
        "quickstart.toml: simulator.inputs.x1: low = 10.0 must be smaller than high = -5.0; "
        "swap the bounds or widen the interval"
    )
    data = with_changes(MINIMAL, campaign={"budgett": 10})
    message = config_error(data, source="quickstart.toml")
    assert message.startswith("quickstart.toml: campaign.budgett: unknown key; did you mean 'budget'? (known keys: ")
    assert "concurrency" in message and "max_failure_fraction" in message


def test_typo_is_reported_before_the_missing_key_it_causes() -> None:
    data = with_changes(MINIMAL)
    data["simulator"]["outptus"] = data["simulator"].pop("outputs")
    message = config_error(data)
    assert message_path(message, "wf.toml") == "simulator.outptus"
    assert "did you mean 'outputs'?" in message


def test_wrong_type_quoted_number_suggests_dropping_quotes() -> None:
    message = config_error(with_changes(MINIMAL, campaign={"budget": "10"}))
    assert "write the value without quotes" in message


def test_missing_file_and_directory_raise_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"workflow file not found"):
        load_workflow(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match=r"cannot read the workflow file"):
        load_workflow(tmp_path)


def test_non_utf8_file_raises_config_error(tmp_path: Path) -> None:
    path = tmp_path / "latin1.toml"
    path.write_bytes(b'[campaign]\nname = "caf\xe9"\n')
    with pytest.raises(ConfigError, match=r"not UTF-8 text"):
        load_workflow(path)


def test_top_level_must_be_a_table_and_workflow_dir_is_not_settable() -> None:
    assert "expected a table of sections" in config_error([1, 2])
    data = with_changes(MINIMAL)
    data["workflow_dir"] = "/somewhere"
    assert message_path(config_error(data), "wf.toml") == "workflow_dir"


@pytest.mark.parametrize(
    ("changes", "path", "fragment"),
    [
        ({"simulator": {"env": {"OMP_NUM_THREADS": "1"}}}, "simulator.env", "only used when kind = 'script'"),
        ({"simulator": {"fixed_inputs": {"x1": 3}}}, "simulator.fixed_inputs.x1", "also an input or output"),
        ({"simulator": {"fixed_inputs": {"when": [1, float("nan")]}}}, "simulator.fixed_inputs.when[1]", "finite"),
        ({"simulator": {"outputs": "y"}}, "simulator.outputs", "must be an array, not a string"),
        ({"simulator": {"outputs": ["x1"]}}, "simulator.outputs", "both inputs and outputs"),
        ({"simulator": {"inputs": {}}}, "simulator.inputs", "no inputs"),
        ({"simulator": {"timeout": 0}}, "simulator.timeout", "must be > 0"),
        ({"simulator": {"deterministic": "yes"}}, "simulator.deterministic", "expected true or false"),
        ({"campaign": {"seed": -1}}, "campaign.seed", "must be >= 0"),
        ({"campaign": {"max_failure_fraction": 0.0}}, "campaign.max_failure_fraction", "must be > 0"),
        ({"campaign": {"name": "a/b"}}, "campaign.name", "cannot name a campaign"),
        ({"campaign": {"mode": "parallel"}}, "campaign.mode", "expected one of 'async', 'sync'"),
        ({"campaign": {"store": ""}}, "campaign.store", "not a usable path"),
        ({"campaign": {"store": 5}}, "campaign.store", "expected a path in quotes"),
        ({"surrogate": {"device": "gpu"}}, "surrogate.device", "expected one of 'auto', 'cpu', 'cuda'"),
        ({"surrogate": {"gpu": True}}, "surrogate.gpu", "no worker of the local cluster has a GPU"),
        ({"acquisition": {"candidates": __file__}}, "acquisition.candidates", "only used when mode = 'pool'"),
        ({"acquisition": {"restarts": 0}}, "acquisition.restarts", "must be >= 1"),
        ({"acquisition": {"information": "d-optimal"}}, "acquisition.information", "expected one of 'variance', 'logdet'"),
        ({"acquisition": {"surprise_cap": 0.5}}, "acquisition.surprise_cap", "must be >= 1"),
        ({"acquisition": {"batch": "topq", "surprise_cap": 10}}, "acquisition.surprise_cap", "only used when batch = 'greedy'"),
        ({"acquisition": {"localisation": -0.5}}, "acquisition.localisation", "must be >= 0"),
        ({"acquisition": {"batch": "topq", "localisation": 0.25}}, "acquisition.localisation", "only used when batch = 'greedy'"),
        ({"cluster": {"memory_limit": "lots"}}, "cluster.memory_limit", "not a memory size"),
        ({"cluster": {"dashboard": True}}, "cluster.dashboard", "expected false (no dashboard) or 'HOST:PORT'"),
        ({"cluster": {"dashboard": "127.0.0.1:99999"}}, "cluster.dashboard", "'HOST:PORT'"),
        ({"cluster": {"tls": "yes"}}, "cluster.tls", "or 'temporary'"),
        ({"cluster": {"tls": {"ca_file": __file__}}}, "cluster.tls.cert", "missing required key"),
        ({"cluster": {"kind": "slurm", "tls": "temporary"}}, "cluster.tls", "only work for kind = 'local'"),
        ({"cluster": {"kind": "slurm", "options": {"n_workers": 3}}}, "cluster.options.n_workers", "cluster.jobs"),
        ({"cluster": {"kind": "slurm", "adapt": {"minimum": 1}}}, "cluster.adapt.maximum", "missing required key"),
        ({"cluster": {"kind": "address", "address": "localhost"}}, "cluster.address", "PROTOCOL://HOST:PORT"),
        ({"cluster": {"kind": "address", "address": "tls://10.0.0.1:8786"}}, "cluster.tls", "is encrypted"),
        ({"cluster": {"kind": "pbs", "workers": 3}}, "cluster.workers", "only used when kind = 'local'"),
        ({"cluster": {"kind": "lsf", "jobs": 3, "adapt": {"maximum": 4}}}, "cluster.jobs", "either jobs or adapt"),
        ({"validation": {}}, "validation.file", "missing required key"),
        ({"simulator": {"kind": "remote"}}, "simulator.kind", "expected one of 'python', 'script'"),
        ({"campaign": {"stop": {"max_wall_time": "1m2h"}}}, "campaign.stop.max_wall_time", "not a duration"),
        ({"campaign": {"stop": {"max_wall_time": True}}}, "campaign.stop.max_wall_time", "wrong type"),
        ({"campaign": {"stop": {"target_error": 0}}}, "campaign.stop.target_error", "must be > 0"),
        ({"campaign": 3}, "campaign", "expected a table"),
    ],
)
def test_more_invalid_values(changes: dict[str, Any], path: str, fragment: str) -> None:
    data = copy.deepcopy(MINIMAL)
    for section, values in changes.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section].update(values)
        else:
            data[section] = values
    message = config_error(data)
    assert message_path(message, "wf.toml") == path
    assert fragment in message


@pytest.mark.parametrize(
    ("changes", "path", "fragment"),
    [
        ({"input_format": "template"}, "simulator.template", "required when input_format = 'template'"),
        ({"output_format": "parse"}, "simulator.parse", "required when output_format = 'parse'"),
        ({"parse": "io:read"}, "simulator.parse", "only used when output_format = 'parse'"),
        ({"output_regex": {"y": "(.*)"}}, "simulator.output_regex", "only used when output_format = 'regex'"),
        (
            {"output_format": "regex", "output_regex": {"y": "(", "z": "(a)"}},
            "simulator.output_regex.y",
            "does not compile",
        ),
        ({"output_format": "regex", "output_regex": {"q": "(a)"}}, "simulator.output_regex.q", "is not an output"),
        ({"output_filename": "../out.json"}, "simulator.output_filename", "no '..'"),
        ({"output_filename": "input.json"}, "simulator.output_filename", "equals input_filename"),
        ({"command": ["python", "sim.py", "{0}"]}, "simulator.command[2]", "is not a plain name"),
        ({"command": ["python", "sim.py", "{input"]}, "simulator.command[2]", "bad braces"),
        ({"command": ["", "sim.py"]}, "simulator.command[0]", "program name is empty"),
        ({"command": ["python", 3]}, "simulator.command[1]", "expected a string in quotes"),
        ({"env": {"A": 1}}, "simulator.env.A", "expected a string in quotes"),
        ({"env": {"A=B": "1"}}, 'simulator.env."A=B"', "not a usable environment variable"),
        ({"kill_grace": -1}, "simulator.kill_grace", "non-negative"),
        ({"retries": -1}, "simulator.retries", "must be >= 0"),
    ],
)
def test_invalid_script_settings(changes: dict[str, Any], path: str, fragment: str) -> None:
    message = config_error(with_changes(SCRIPT, simulator=changes))
    assert message_path(message, "wf.toml") == path
    assert fragment in message


def test_pydantic_validation_error_never_escapes() -> None:
    # ConfigError is a ValueError; a raw pydantic ValidationError would be one too, so check the class.
    with pytest.raises(ConfigError) as info:
        parse_workflow({"campaign": {"budget": "x"}}, Path("/nonexistent"))
    assert not isinstance(info.value, ValidationError)
    assert str(info.value).startswith("<workflow>: campaign.budget: ")


# --------------------------------------------------------------------------------------
# Good workflows
# --------------------------------------------------------------------------------------
def test_complete_workflow_parses_with_every_value(tmp_path: Path) -> None:
    spec = load_workflow(write_complete(tmp_path))
    c, sim, sur, acq, cl = spec.campaign, spec.simulator, spec.surrogate, spec.acquisition, spec.cluster
    assert (c.name, c.budget, c.concurrency, c.mode, c.batch_size, c.seed) == ("heat_sink", 64, 4, "sync", 8, 7)
    assert c.initial_design == InitialDesignSpec(size=16, kind="lhs")
    assert c.store == tmp_path / "results" / "heat_sink.h5"
    assert (c.refit_every, c.count_failed, c.max_failure_fraction, c.min_runs_for_breaker) == (2, False, 0.25, 12)
    assert c.stop == StopSpec(max_wall_time=5400.0, target_error=0.01)
    assert sim.kind == "script"
    assert sim.command[2] == "/opt/sims/heat.py" and sim.command[-1] == "run{run_id}_{conductivity:.3g}"
    assert sim.template == tmp_path / "sim.tmpl"
    assert (sim.input_format, sim.input_filename, sim.output_format, sim.output_filename) == (
        "template",
        "heat.in",
        "regex",
        "heat.log",
    )
    assert dict(sim.output_regex) == {"t_max": r"max temperature: (\S+)", "dp": "pressure drop = ([-+0-9.eE]+)"}
    assert dict(sim.env) == {"OMP_NUM_THREADS": "1", "HEAT_MODE": "fast"}
    assert sim.workdir == tmp_path / "scratch" / "runs"
    assert (sim.keep_workdirs, sim.kill_grace, sim.timeout, sim.retries, sim.gpu) == (True, 10.0, 900.0, 2, True)
    assert sim.fixed_inputs["tolerances"] == (1e-6, 1e-8)
    assert sim.fixed_inputs["solver"] == {"name": "cg", "restart": 30}
    assert list(sim.inputs) == ["conductivity", "inlet_velocity", "fin_height"]
    assert sim.inputs["conductivity"] == InputBounds(low=0.1, high=100.0, scale="log")
    assert sim.outputs == ("t_max", "dp")
    assert (sur.kind, sur.device, sur.gpu) == ("ensemble", "cpu", False)
    assert sur.options == {"num_members": 4, "hidden_layers": (32, 32)}
    assert (acq.policy, acq.mode, acq.candidates) == ("default", "pool", tmp_path / "candidates.csv")
    assert acq.lambda_schedule == LambdaScheduleSpec(kind="linear", start=0.1, end=1.0)
    assert (acq.batch, acq.information, acq.raw_samples, acq.restarts, acq.feasibility) == ("topq", "logdet", 256, 4, False)
    assert (cl.kind, cl.workers, cl.threads_per_worker, cl.processes, cl.memory_limit) == ("local", 3, 2, False, "2GB")
    assert (cl.dashboard, cl.host, cl.worker_gpus, cl.tls) == ("127.0.0.1:8787", "localhost", 1, "temporary")
    assert spec.validation == ValidationSpec(file=tmp_path / "validation.csv")
    assert spec.workflow_dir == tmp_path


def test_acquisition_settings_reach_the_policy(tmp_path: Path) -> None:
    from surrogate_al.campaign.build import build_policy

    spec = load_workflow(write_complete(tmp_path))
    policy = build_policy(spec, spec.space())
    assert (policy.mode, policy.batch, policy.information, policy.raw_samples, policy.restarts, policy.feasibility) == (
        "pool", "topq", "logdet", 256, 4, False)
    assert policy.candidates.shape == (2, 3)


def test_surprise_cap_reaches_the_policy(tmp_path: Path) -> None:
    from surrogate_al.campaign.build import build_policy

    data = copy.deepcopy(MINIMAL)
    data["acquisition"] = {"surprise_cap": 100}  # an integer in TOML is a number here
    spec = parse_workflow(data, tmp_path, "wf.toml")
    assert spec.acquisition.surprise_cap == 100.0
    assert build_policy(spec, spec.space()).surprise_cap == 100.0
    default = parse_workflow(copy.deepcopy(MINIMAL), tmp_path, "wf.toml")
    assert build_policy(default, default.space()).surprise_cap == 1.0


def test_localisation_reaches_the_policy(tmp_path: Path) -> None:
    from surrogate_al.campaign.build import build_policy
    for value in (0, 0.5):  # 0 (an integer in TOML) turns the taper off
        data = copy.deepcopy(MINIMAL)
        data["acquisition"] = {"localisation": value}
        spec = parse_workflow(data, tmp_path, "wf.toml")
        assert build_policy(spec, spec.space()).localisation == value
    default = parse_workflow(copy.deepcopy(MINIMAL), tmp_path, "wf.toml")
    assert build_policy(default, default.space()).localisation == 0.0
    # A simulator declared deterministic gets the taper unless the workflow sets it.
    declared = copy.deepcopy(MINIMAL)
    declared["simulator"]["deterministic"] = True
    spec = parse_workflow(declared, tmp_path, "wf.toml")
    policy = build_policy(spec, spec.space())
    assert policy.deterministic and policy.localisation == 0.5
    declared["acquisition"] = {"localisation": 0}
    spec = parse_workflow(declared, tmp_path, "wf.toml")
    assert build_policy(spec, spec.space()).localisation == 0.0
    # Stored and rebuilt (resume) alike.
    assert spec_from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


def test_complete_workflow_round_trips_through_plain_data(tmp_path: Path) -> None:
    spec = load_workflow(write_complete(tmp_path))
    data = spec.to_dict()
    text = json.dumps(data, allow_nan=False)  # JSON-able, as stored in the campaign's HDF5 file
    assert spec_from_dict(data) == spec
    assert spec_from_dict(json.loads(text)) == spec
    assert spec_from_dict(json.loads(text)).to_dict() == data
    assert data["simulator"]["template"] == str(tmp_path / "sim.tmpl")
    assert data["simulator"]["fixed_inputs"]["tolerances"] == [1e-6, 1e-8]


@pytest.mark.parametrize("name", ["minimal", "slurm"])
def test_good_fixtures_round_trip(name: str) -> None:
    spec = load_workflow(GOOD / f"{name}.toml")
    assert spec_from_dict(json.loads(json.dumps(spec.to_dict(), allow_nan=False))) == spec


def test_minimal_workflow_gets_every_default() -> None:
    spec = load_workflow(GOOD / "minimal.toml")
    here = GOOD.resolve()
    assert spec.campaign == CampaignSpec(
        name="minimal",
        budget=30,
        concurrency=2,
        mode="async",
        batch_size=2,
        initial_design=InitialDesignSpec(size=None, kind="sobol"),
        seed=0,
        store=here / "minimal.h5",
        refit_every=1,
        count_failed=True,
        max_failure_fraction=0.5,
        min_runs_for_breaker=10,
        stop=StopSpec(max_wall_time=None, target_error=None),
    )
    sim = spec.simulator
    assert sim.workdir == here / "minimal_runs"
    # File names belong to the script kind; a python simulator has none.
    assert (sim.input_format, sim.input_filename, sim.output_format, sim.output_filename) == ("json", None, "json", None)
    assert (sim.timeout, sim.retries, sim.gpu, sim.keep_workdirs, sim.kill_grace) == (None, 1, False, False, 5.0)
    assert (sim.env, sim.fixed_inputs, sim.command, sim.output_regex, sim.parse) == ({}, {}, None, None, None)
    assert spec.surrogate == SurrogateSpec(kind="auto", options={}, device="auto", gpu=False)
    assert spec.acquisition == AcquisitionSpec(
        policy="default",
        mode="synthesis",
        candidates=None,
        lambda_schedule=LambdaScheduleSpec(kind="constant", start=None, end=0.9),
        batch="greedy",
        information="variance",
        raw_samples=1024,
        restarts=8,
        feasibility=True,
    )
    cl = spec.cluster
    assert (cl.kind, cl.workers, cl.threads_per_worker, cl.processes, cl.memory_limit) == ("local", 2, 1, True, None)
    assert (cl.dashboard, cl.host, cl.allow_remote, cl.worker_gpus, cl.tls, cl.address) == (
        False,
        "127.0.0.1",
        False,
        0,
        None,
        None,
    )
    assert spec.validation is None


def test_dependent_defaults_follow_the_fields_they_depend_on() -> None:
    data = with_changes(MINIMAL, campaign={"concurrency": 6, "store": "out/c1.h5"})
    spec = parse_workflow(data, Path("/base"), "x/my_wf.toml")
    assert (spec.campaign.batch_size, spec.cluster.workers) == (6, 6)
    assert spec.campaign.name == "my_wf"
    assert spec.campaign.store == Path("/base/out/c1.h5")
    assert spec.simulator.workdir == Path("/base/out/c1_runs")
    spec = parse_workflow(with_changes(MINIMAL, campaign={"name": "branin"}), Path("/base"))
    assert spec.campaign.store == Path("/base/branin.h5")
    assert parse_workflow(MINIMAL, Path("/base")).campaign.name == "campaign"  # no file: no stem
    slurm = parse_workflow(with_changes(MINIMAL, cluster={"kind": "slurm", "insecure": True}), Path("/base"))
    assert slurm.cluster.workers is None


def test_relative_paths_resolve_against_the_workflow_directory(tmp_path: Path, monkeypatch: Any) -> None:
    wf_dir = tmp_path / "project" / "workflows"
    wf_dir.mkdir(parents=True)
    (wf_dir / "inputs").mkdir()
    (wf_dir / "inputs" / "sim.tmpl").write_text("x1 = ${x1}\n")
    (tmp_path / "project" / "val.csv").write_text("x1,y\n0.5,1.0\n")
    text = """
[campaign]
budget = 5
store = "../store/run.h5"

[simulator]
kind = "script"
command = ["python", "sim.py", "{input}"]
input_format = "template"
template = "inputs/sim.tmpl"
workdir = "./scratch"
outputs = ["y"]
inputs = { x1 = { low = 0.0, high = 1.0 } }

[validation]
file = "../val.csv"
"""
    (wf_dir / "wf.toml").write_text(text)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    spec = load_workflow(Path("..") / "project" / "workflows" / "wf.toml")
    assert spec.campaign.store == tmp_path / "project" / "store" / "run.h5"
    assert spec.simulator.template == wf_dir / "inputs" / "sim.tmpl"
    assert spec.simulator.workdir == wf_dir / "scratch"
    assert spec.validation is not None and spec.validation.file == tmp_path / "project" / "val.csv"
    assert spec.workflow_dir == wf_dir
    # The command is passed on untouched: no path in it is rewritten.
    assert spec.simulator.command == ("python", "sim.py", "{input}")


def test_absolute_and_home_paths_are_kept(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = parse_workflow(with_changes(MINIMAL, campaign={"store": "~/c.h5"}), Path("/base"))
    assert spec.campaign.store == tmp_path / "c.h5"
    spec = parse_workflow(with_changes(MINIMAL, campaign={"store": "/data/c.h5"}), Path("/base"))
    assert spec.campaign.store == Path("/data/c.h5")


@pytest.mark.parametrize(
    ("value", "seconds"),
    [("2h", 7200.0), ("30m", 1800.0), ("90s", 90.0), ("1h30m", 5400.0), ("1.5h", 5400.0), ("1d 2h", 93600.0), (90, 90.0), (2.5, 2.5)],
)
def test_durations_are_stored_as_float_seconds(value: Any, seconds: float) -> None:
    data = with_changes(MINIMAL, campaign={"stop": {"max_wall_time": value}}, simulator={"timeout": value})
    spec = parse_workflow(data, Path("/base"))
    assert spec.campaign.stop.max_wall_time == seconds
    assert spec.simulator.timeout == seconds
    assert isinstance(spec.simulator.timeout, float)


@pytest.mark.parametrize("value", ["2 hours", "h", "", "30x", "1m2h", "-5s", -5, float("inf")])
def test_bad_durations_are_rejected(value: Any) -> None:
    message = config_error(with_changes(MINIMAL, campaign={"stop": {"max_wall_time": value}}))
    assert message_path(message, "wf.toml") == "campaign.stop.max_wall_time"


@pytest.mark.parametrize(
    ("changes", "input_filename", "output_filename"),
    [
        ({}, "input.json", "output.json"),
        ({"input_format": "template", "template": "sim.tmpl"}, "input.txt", "output.json"),
        ({"input_format": "none", "command": ["sim", "{x1}", "{output}"]}, None, "output.json"),
        ({"output_format": "csv"}, "input.json", "output.csv"),
        ({"output_format": "keyvalue", "command": ["sim", "{input}"]}, "input.json", None),
        ({"output_format": "parse", "parse": "io:read", "command": ["sim", "{input}"]}, "input.json", None),
        ({"output_format": "keyvalue", "output_filename": "log.txt"}, "input.json", "log.txt"),
    ],
)
def test_script_file_names_default_by_format(
    tmp_path: Path, changes: dict[str, Any], input_filename: str | None, output_filename: str | None
) -> None:
    (tmp_path / "sim.tmpl").write_text("x1 = ${x1}\n")
    spec = parse_workflow(with_changes(SCRIPT, simulator=changes), tmp_path)
    assert (spec.simulator.input_filename, spec.simulator.output_filename) == (input_filename, output_filename)
    assert spec_from_dict(spec.to_dict()) == spec


@pytest.mark.parametrize(
    ("changes", "path", "fragment"),
    [
        ({"output_format": "keyvalue"}, "simulator.command[3]", "placeholder {output} cannot be filled"),
        ({"input_format": "none"}, "simulator.command[2]", "placeholder {input} cannot be filled"),
        ({"input_format": "none", "input_filename": "in.json"}, "simulator.input_filename", "only used when"),
        ({"inputs": {"run_id": {"low": 0, "high": 1}}}, "simulator.inputs.run_id", "reserved"),
        ({"command": ["sim", "a\x00b"]}, "simulator.command[1]", "NUL"),
    ],
)
def test_script_placeholders_need_what_they_name(changes: dict[str, Any], path: str, fragment: str) -> None:
    message = config_error(with_changes(SCRIPT, simulator=changes))
    assert message_path(message, "wf.toml") == path
    assert fragment in message


def test_command_placeholders_accept_input_names_and_format_specs() -> None:
    command = ["sim", "--x={x1:.6g}", "{workdir}/{run_id}", "{input}", "{output}", "{{literal}}", "--m={mesh}"]
    data = with_changes(SCRIPT, simulator={"command": command, "fixed_inputs": {"mesh": "fine"}})
    spec = parse_workflow(data, Path("/base"))
    assert spec.simulator.command == tuple(command)


def test_space_is_built_from_the_inputs() -> None:
    data = with_changes(MINIMAL, simulator={"inputs": {"k": {"low": 1e-3, "high": 10.0, "scale": "log"}, "u": {"low": 0, "high": 2}}})
    space = parse_workflow(data, Path("/base")).space()
    assert space.names == ("k", "u")
    assert [d.scale for d in space.dimensions] == ["log", "linear"]
    np.testing.assert_allclose(space.lower, [1e-3, 0.0])
    np.testing.assert_allclose(space.upper, [10.0, 2.0])


# --------------------------------------------------------------------------------------
# Frozen values
# --------------------------------------------------------------------------------------
def test_spec_and_its_tables_are_immutable() -> None:
    spec = load_workflow(GOOD / "slurm.toml")
    with pytest.raises(ValidationError):
        spec.campaign.budget = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.simulator.inputs["x9"] = InputBounds(low=0, high=1)  # type: ignore[index]
    with pytest.raises(TypeError):
        spec.cluster.options["cores"] = 2  # type: ignore[index]
    with pytest.raises(AttributeError):
        spec.cluster.options["job_extra_directives"].append("--x")
    assert isinstance(spec.cluster.options, FrozenMap)
    assert spec.cluster.options.thaw()["job_extra_directives"] == ["--gres=gpu:1"]
    assert hash(spec) == hash(spec_from_dict(spec.to_dict()))


def test_frozen_map_behaves_like_a_read_only_mapping() -> None:
    a = FrozenMap({"x": 1, "y": FrozenMap({"z": (1, 2)})})
    assert a == {"x": 1, "y": {"z": (1, 2)}}
    assert a == FrozenMap({"y": FrozenMap({"z": (1, 2)}), "x": 1})
    assert hash(a) == hash(FrozenMap({"y": FrozenMap({"z": (1, 2)}), "x": 1}))
    assert list(a) == ["x", "y"] and len(a) == 2 and a["x"] == 1
    assert a.thaw() == {"x": 1, "y": {"z": [1, 2]}}
    assert a != {"x": 2, "y": {}}


# --------------------------------------------------------------------------------------
# Files referenced by the workflow
# --------------------------------------------------------------------------------------
def test_validation_file_header_must_name_every_input_and_output(tmp_path: Path) -> None:
    (tmp_path / "val.csv").write_text("x1,y\n1,2\n")
    message = config_error(with_changes(MINIMAL, validation={"file": "val.csv"}), tmp_path)
    assert message_path(message, "wf.toml") == "validation.file"
    assert "lacks columns ['x2']" in message
    (tmp_path / "val.csv").write_text("x2, x1 ,y,extra\n1,2,3,4\n")
    spec = parse_workflow(with_changes(MINIMAL, validation={"file": "val.csv"}), tmp_path)
    assert spec.validation == ValidationSpec(file=tmp_path / "val.csv")


def test_pool_candidates_csv_and_npy_are_checked(tmp_path: Path) -> None:
    pool = {"mode": "pool", "candidates": "cand.csv"}
    (tmp_path / "cand.csv").write_text("x1\n0.5\n")
    message = config_error(with_changes(MINIMAL, acquisition=pool), tmp_path)
    assert "lacks columns ['x2']" in message
    np.save(tmp_path / "cand.npy", np.zeros((4, 3)))
    message = config_error(with_changes(MINIMAL, acquisition={**pool, "candidates": "cand.npy"}), tmp_path)
    assert "shape (4, 3); expected (n, 2)" in message
    np.save(tmp_path / "cand.npy", np.zeros((4, 2)))
    spec = parse_workflow(with_changes(MINIMAL, acquisition={**pool, "candidates": "cand.npy"}), tmp_path)
    assert spec.acquisition.candidates == tmp_path / "cand.npy"
    (tmp_path / "cand.txt").write_text("0.5 0.5\n")
    message = config_error(with_changes(MINIMAL, acquisition={**pool, "candidates": "cand.txt"}), tmp_path)
    assert "expected a .csv or .npy file" in message


def test_spec_from_dict_can_skip_file_checks(tmp_path: Path) -> None:
    spec = load_workflow(write_complete(tmp_path))
    data = spec.to_dict()
    (tmp_path / "sim.tmpl").unlink()
    with pytest.raises(ConfigError, match=r"^<stored spec>: simulator\.template: file not found"):
        spec_from_dict(data)
    assert spec_from_dict(data, check_files=False) == spec


def test_address_cluster_with_tls_files(tmp_path: Path) -> None:
    for name in ("ca.pem", "cert.pem", "key.pem"):
        (tmp_path / name).write_text("-----BEGIN CERTIFICATE-----\n")
    tls = {"ca_file": "ca.pem", "cert": "cert.pem", "key": "key.pem"}
    data = with_changes(MINIMAL, cluster={"kind": "address", "address": "tls://10.0.0.1:8786", "tls": tls})
    spec = parse_workflow(data, tmp_path)
    assert spec.cluster.tls == TLSFiles(ca_file=tmp_path / "ca.pem", cert=tmp_path / "cert.pem", key=tmp_path / "key.pem")
    assert spec.cluster.workers is None
    assert spec.to_dict()["cluster"]["tls"] == {k: str(tmp_path / v) for k, v in tls.items()}
    assert spec_from_dict(spec.to_dict()) == spec
    data = with_changes(MINIMAL, cluster={"kind": "address", "address": "tcp://10.0.0.1:8786", "tls": tls})
    message = config_error(data, tmp_path)
    assert message_path(message, "wf.toml") == "cluster.address" and "not encrypted" in message


def test_remote_binding_is_allowed_only_when_asked_for() -> None:
    data = with_changes(MINIMAL, cluster={"host": "0.0.0.0", "dashboard": "0.0.0.0:8787", "allow_remote": True})
    spec = parse_workflow(data, Path("/base"))
    assert (spec.cluster.host, spec.cluster.dashboard) == ("0.0.0.0", "0.0.0.0:8787")
    for host in ("localhost", "127.0.0.2", "::1"):
        assert parse_workflow(with_changes(MINIMAL, cluster={"host": host}), Path("/base")).cluster.host == host
    dash = parse_workflow(with_changes(MINIMAL, cluster={"dashboard": "[::1]:8787"}), Path("/base"))
    assert dash.cluster.dashboard == "[::1]:8787"


def test_gpu_work_is_accepted_when_workers_offer_gpus() -> None:
    data = with_changes(MINIMAL, simulator={"gpu": True}, surrogate={"gpu": True}, cluster={"worker_gpus": 1})
    spec = parse_workflow(data, Path("/base"))
    assert spec.simulator.gpu and spec.surrogate.gpu and spec.cluster.worker_gpus == 1
    # An existing scheduler's workers are not known here, so GPU work is not refused.
    data = with_changes(MINIMAL, simulator={"gpu": True}, cluster={"kind": "address", "address": "tcp://h:8786"})
    assert parse_workflow(data, Path("/base")).simulator.gpu


# --------------------------------------------------------------------------------------
# Surrogate options (checked against the constructors in surrogate_al.surrogates.SURROGATES)
# --------------------------------------------------------------------------------------
def test_surrogate_options_are_checked_against_the_constructor() -> None:
    data = with_changes(MINIMAL, surrogate={"kind": "mc_dropout", "options": {"dropout": 0.2, "hidden_layers": [16]}})
    spec = parse_workflow(data, Path("/base"))
    assert spec.surrogate.options == {"dropout": 0.2, "hidden_layers": (16,)}
    data = with_changes(MINIMAL, surrogate={"kind": "gp", "options": {"kernal": "rbf"}})
    message = config_error(data)
    assert message_path(message, "wf.toml") == "surrogate.options.kernal"
    assert "did you mean 'kernel'?" in message
    # An option of another model is unknown for this one.
    message = config_error(with_changes(MINIMAL, surrogate={"kind": "gp", "options": {"dropout": 0.1}}))
    assert "unknown option for kind = 'gp'" in message


# --------------------------------------------------------------------------------------
# Documentation stays accurate
# --------------------------------------------------------------------------------------
SECTION_MODELS: dict[str, type[BaseModel]] = {
    "campaign": CampaignSpec,
    "campaign.initial_design": InitialDesignSpec,
    "campaign.stop": StopSpec,
    "simulator": SimulatorSpec,
    "simulator.inputs.<name>": InputBounds,
    "surrogate": SurrogateSpec,
    "acquisition": AcquisitionSpec,
    "acquisition.lambda_schedule": LambdaScheduleSpec,
    "cluster": ClusterSpec,
    "cluster.adapt": AdaptSpec,
    "cluster.tls": TLSFiles,
    "validation": ValidationSpec,
}


def doc_tables() -> dict[str, set[str]]:
    """Keys documented in docs/workflow.md: section heading '### [name]' -> first-column `key`s of its table."""
    tables: dict[str, set[str]] = {}
    section = None
    for line in DOCS.read_text().splitlines():
        heading = re.match(r"^### `\[(.+)\]`", line)
        if heading:
            section = heading[1]
            tables[section] = set()
        elif section is not None and (row := re.match(r"^\| `([a-z_]+)` \|", line)):
            tables[section].add(row[1])
    return tables


def test_docs_document_exactly_the_schema() -> None:
    tables = doc_tables()
    assert set(tables) == set(SECTION_MODELS)
    for section, model in SECTION_MODELS.items():
        assert tables[section] == set(model.model_fields), section


def test_docs_example_workflow_is_valid(tmp_path: Path) -> None:
    blocks = re.findall(r"```toml\n(.*?)```", DOCS.read_text(), flags=re.S)
    assert blocks, "docs/workflow.md must contain a complete example in a ```toml block"
    (tmp_path / "workflow.toml").write_text(blocks[-1])
    (tmp_path / "sim.in.tmpl").write_text("k = ${conductivity}\n")
    (tmp_path / "validation.csv").write_text("conductivity,velocity,fin_height,t_max,dp\n1,1,2,300,10\n")
    spec = load_workflow(tmp_path / "workflow.toml")
    assert spec_from_dict(spec.to_dict()) == spec


# --------------------------------------------------------------------------------------
# Property tests: whatever the data, only ConfigError comes out
# --------------------------------------------------------------------------------------
ALL_KEYS = sorted({name for model in SECTION_MODELS.values() for name in model.model_fields} | set(WorkflowSpec.model_fields))
INTERESTING_STRINGS = [
    "gp", "ensemble", "pool", "synthesis", "template", "regex", "parse", "script", "python", "local", "slurm",
    "address", "temporary", "2h", "1h30m", "m:f", "{input}", "{x1}", "{", "tcp://127.0.0.1:8786", "0.0.0.0:8787",
    "127.0.0.1:8787", "log", "linear", "x1", "y", "../x", "/abs", "", "a\nb", "\x00",
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**20), max_value=10**20)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=10)
    | st.sampled_from(INTERESTING_STRINGS)
    | st.datetimes()
)
keys = st.sampled_from(ALL_KEYS) | st.text(max_size=8)
values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(keys, inner, max_size=5), max_leaves=12
)


def check_outcome(data: Any) -> None:
    """parse_workflow either returns a spec that round-trips or raises a one-line ConfigError."""
    try:
        spec = parse_workflow(data, Path("/nonexistent/base"), "prop.toml")
    except ConfigError as exc:
        message = str(exc)
        assert "\n" not in message and "\r" not in message
        assert message.startswith("prop.toml: ")
        return
    assert spec_from_dict(json.loads(json.dumps(spec.to_dict(), allow_nan=False))) == spec


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(sorted(SECTION_MODELS)) | keys, values, max_size=7) | values)
def test_random_data_raises_only_config_error(data: Any) -> None:
    check_outcome(data)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_random_changes_to_valid_workflows_raise_only_config_error(data: st.DataObject) -> None:
    workflow = copy.deepcopy(data.draw(st.sampled_from([MINIMAL, SCRIPT])))
    for _ in range(data.draw(st.integers(1, 3))):
        section = data.draw(st.sampled_from(["campaign", "simulator", "surrogate", "acquisition", "cluster", "validation"]))
        table = workflow.setdefault(section, {})
        if section == "simulator" and isinstance(table.get("inputs"), dict) and data.draw(st.booleans()):
            table = table["inputs"].setdefault("x1", {})
        key = data.draw(keys)
        if data.draw(st.integers(0, 4)) == 0:
            table.pop(key, None)
        else:
            table[key] = data.draw(values)
    check_outcome(workflow)
