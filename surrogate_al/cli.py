"""Command line: ``surrogate-al run / resume / status / check / tls / report / predict / export``.

Exit codes: 0 success; 2 bad input (workflow, store, CSV), one line on stderr,
no traceback; 1 a campaign that could not finish (breaker, lost cluster),
also one line; 128 + the signal's number for a campaign stopped by a signal:
143 SIGTERM (``scancel``, walltime, preemption), 138 SIGUSR1 (the walltime
warning of ``sbatch --signal=USR1@...``), 130 SIGINT (Ctrl-C). Only this
module prints and configures logging.
"""

from __future__ import annotations

import logging
import math
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import click

from surrogate_al import __version__
from surrogate_al.errors import (
    CampaignError,
    ConfigError,
    CorruptJournalError,
    DataError,
    DispatchError,
    NotACampaignStoreError,
    ShapeError,
    SimulatorError,
    StoreError,
    StoreLockedError,
    SurrogateALError,
)

if TYPE_CHECKING:
    from rich.progress import Progress as RichProgress
    from rich.progress import TaskID

    from surrogate_al.campaign import Campaign, Progress

__all__ = ["main", "cli"]

#: Errors that mean "the input is wrong": exit 2.
#: A damaged journal is a damaged input file, like a damaged .h5 (NotACampaignStoreError).
BAD_INPUT = (
    ConfigError, NotACampaignStoreError, CorruptJournalError, StoreLockedError, ShapeError, DataError, SimulatorError
)


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _error_line(message: str) -> str:
    return f"surrogate-al: error: {_one_line(message)}"


def _fail(code: int, message: str) -> NoReturn:
    click.echo(_error_line(message), err=True)
    sys.exit(code)


def _fail_campaign(code: int, message: str) -> NoReturn:
    """:func:`_fail` for a campaign that stopped on an error, after it was closed.

    Its background proposal round (a daemon thread) may still be inside a torch
    fit. Interpreter finalization ends such a thread with ``pthread_exit``, and
    unwinding through torch's C++ frames aborts the process ("terminate called
    without an active exception", exit -6 instead of the documented code). The
    cluster and the store are closed by now, so skipping finalization loses
    nothing; streams and logs are flushed first.
    """
    click.echo(f"surrogate-al: error: {_one_line(message)}", err=True)
    if any(t.is_alive() and t.name.startswith("surrogate_al-") for t in threading.enumerate()):
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


def _setup_logging(verbose: int) -> None:
    level = logging.WARNING if verbose == 0 else logging.INFO if verbose == 1 else logging.DEBUG
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Dask is chatty about worker start-up and shutdown; keep it to errors unless asked.
    # Importing distributed first matters: its import installs its own logging levels.
    if verbose < 2:
        import distributed  # noqa: F401

        for name in ("distributed", "dask_jobqueue"):
            logging.getLogger(name).setLevel(logging.ERROR)


class _ProgressBar:
    """A rich live bar: runs settled / budget, in flight, failures, estimated error, λ."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._progress: RichProgress | None = None
        self._task: TaskID | None = None

    def __enter__(self) -> _ProgressBar:
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
            from rich.progress import Progress as RichProgress

            self._progress = RichProgress(
                TextColumn("[bold]runs"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[detail]}"),
                TimeElapsedColumn(),
                transient=False,
            )
            self._progress.__enter__()
            self._task = self._progress.add_task("campaign", total=None, detail="starting")
        return self

    def update(self, p: Progress) -> None:
        """Show the campaign's progress ``p`` (a no-op when the bar is off)."""
        if self._progress is None or self._task is None:
            return
        err = "n/a" if math.isnan(p.estimated_error) else f"{p.estimated_error:.3g}"
        lam = "n/a" if math.isnan(p.lam) else f"{p.lam:.2f}"
        detail = f"in flight {p.in_flight} | failed {p.failed} | est. error {err} | λ {lam}"
        self._progress.update(self._task, completed=p.settled, total=p.budget, detail=detail)

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.__exit__(None, None, None)


def _close_after_error(campaign: Campaign) -> None:
    """Close a campaign that stopped on an error; a second error must not hide the first.

    On a full disk the final snapshot fails too; the store then keeps its
    journal (nothing acknowledged is lost) and the first error, already
    telling the user what to do, is the one reported.
    """
    try:
        campaign.close()
    except (SurrogateALError, OSError) as exc:
        logging.getLogger(__name__).info("closing the campaign after the error failed too: %s", _one_line(str(exc)))


def _stopped_line(exc: KeyboardInterrupt, store: object) -> str:
    """The one line for a campaign stopped by a signal (``exc``: a StopSignal or a plain Ctrl-C)."""
    name = getattr(exc, "name", "SIGINT")
    n = getattr(exc, "stopped_runs", None)
    runs = f"{n} runs in flight were stopped and run again on resume; " if n else ""
    return f"stopped by {name}; {runs}finished runs are stored: surrogate-al resume {store}"


def _run_campaign(make: Callable[[Callable[[Progress], None]], Campaign], show_progress: bool) -> None:
    """Run the campaign ``make`` builds (given the progress callback) and print how it ended.

    Exits 1 (breaker, lost cluster), 2 (bad input), or on a stop signal 143
    (SIGTERM), 138 (SIGUSR1) or 130 (SIGINT, Ctrl-C), with one line on
    stderr, after closing the campaign (state ``stopped``, lock released).
    """
    from surrogate_al.campaign.stop_signals import exit_code, handle_stop_signals

    with _ProgressBar(show_progress) as bar:
        campaign = make(bar.update)
        try:
            with handle_stop_signals():
                try:
                    bar.update(campaign.progress())
                    outcome = campaign.run()
                except KeyboardInterrupt as exc:  # SIGTERM, SIGINT, SIGUSR1: the stop is recorded by now
                    _close_after_error(campaign)
                    _fail_campaign(exit_code(exc), _stopped_line(exc, campaign.store.path))
        except BAD_INPUT as exc:
            _close_after_error(campaign)
            _fail_campaign(2, str(exc))
        except SurrogateALError as exc:  # breaker, lost cluster, a store that cannot be written (full disk)
            _close_after_error(campaign)
            _fail_campaign(1, str(exc))
        campaign.close()
    click.echo(f"campaign {outcome.status}: {outcome.reason}")
    click.echo(f"store: {outcome.store} ({outcome.settled} settled runs, {outcome.ok} ok)")
    click.echo(f"next: surrogate-al status {outcome.store} ; surrogate-al report {outcome.store} -o report/")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="surrogate-al")
@click.option("-v", "--verbose", count=True, help="More logging (-v info, -vv debug).")
def cli(verbose: int) -> None:
    """Active-learning campaigns that build surrogate models of expensive simulators."""
    _setup_logging(verbose)


@cli.command()
@click.argument("workflow", type=click.Path(path_type=Path))
@click.option("--force", is_flag=True, help="Overwrite an existing store at the workflow's store path.")
@click.option("--no-progress", is_flag=True, help="No live progress bar.")
@click.option("--report", "report_dir", type=click.Path(path_type=Path), default=None, help="Write a report here when done.")
def run(workflow: Path, force: bool, no_progress: bool, report_dir: Path | None) -> None:
    """Run the campaign described by WORKFLOW (a TOML file) to its budget."""
    from surrogate_al.campaign import Campaign

    _run_campaign(lambda cb: Campaign.from_workflow(workflow, force=force, on_progress=cb), not no_progress)
    if report_dir is not None:
        _write_report(_store_of_workflow(workflow), report_dir)


def _store_of_workflow(workflow: Path) -> Path:
    from surrogate_al.config import load_workflow

    return Path(load_workflow(workflow).campaign.store)


@cli.command()
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--force-unlock", is_flag=True, help="Break a lock left by a driver on another host.")
@click.option("--no-progress", is_flag=True, help="No live progress bar.")
def resume(store: Path, force_unlock: bool, no_progress: bool) -> None:
    """Continue a stopped or killed campaign from its STORE to the budget."""
    from surrogate_al.status import read_status

    # Read-only, before anything is started: a finished campaign needs no cluster and no lock.
    current = read_status(store)
    if current.state == "completed":
        reason = f" ({current.reason})" if current.reason else ""
        click.echo(f"campaign already completed{reason}; nothing to resume")
        click.echo(f"store: {current.path} ({current.budget_used} settled runs)")
        return
    from surrogate_al.campaign import Campaign

    _run_campaign(lambda cb: Campaign.resume(store, force_unlock=force_unlock, on_progress=cb), not no_progress)


@cli.command()
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def status(store: Path, as_json: bool) -> None:
    """State (interrupted when the driver is gone), budget used, run counts, in flight, last checkpoint."""
    import json

    from surrogate_al.status import read_status, status_json, status_lines

    current = read_status(store)
    if as_json:
        click.echo(json.dumps(status_json(current), indent=2, allow_nan=False))
        return
    for line in status_lines(current):
        click.echo(line)


@cli.command()
@click.argument("workflow", type=click.Path(path_type=Path))
@click.option("--run-one", is_flag=True, help="Also run the simulator once, at the centre of the input box.")
def check(workflow: Path, run_one: bool) -> None:
    """Report every problem of WORKFLOW at once, without starting a cluster or writing a store."""
    from surrogate_al import checks

    spec, problems = checks.workflow_problems(workflow)
    for problem in problems:
        click.echo(_error_line(problem), err=True)
    if spec is None or problems:
        sys.exit(2)
    sim = spec.simulator
    click.echo(
        f"workflow ok: {workflow} (campaign {spec.campaign.name!r}, {sim.kind} simulator, {len(sim.inputs)} inputs, "
        f"{len(sim.outputs)} outputs, budget {spec.campaign.budget}, store {spec.campaign.store})"
    )
    if not run_one:
        return
    one = checks.run_one(spec)
    click.echo("test run at the centre of the input box, in a temporary directory:")
    for name, value in one.inputs.items():
        click.echo(f"  {name} = {value:.6g}")
    if not one.result.ok:
        _fail(2, checks.run_failure_line(str(workflow), one.result))
    click.echo(f"outputs ({one.result.wall_time:.2f} s):")
    for name, value in one.result.outputs.items():
        click.echo(f"  {name} = {value:.6g}")


@cli.command()
@click.argument("directory", type=click.Path(path_type=Path))
@click.option("--days", type=int, default=365, show_default=True, help="Validity of the certificates.")
@click.option("--force", is_flag=True, help="Replace certificates already in DIRECTORY.")
def tls(directory: Path, days: int, force: bool) -> None:
    """Make a private CA and a certificate for the campaign's Dask traffic in DIRECTORY."""
    from surrogate_al.certificates import make_certificates

    files = make_certificates(directory, days=days, force=force)
    click.echo(f"certificates: {files.ca_file.parent} (owner-only files; keep them where the compute nodes can read them)")
    click.echo("add to the workflow's [cluster] section:")
    click.echo(f"  {files.workflow_line()}")


@cli.command()
@click.argument("store", type=click.Path(path_type=Path))
@click.option("-o", "--output", "out_dir", type=click.Path(path_type=Path), required=True, help="Directory for PNGs and summary.md.")
def report(store: Path, out_dir: Path) -> None:
    """Learning curve, sample maps, slices of mean and uncertainty, and a summary."""
    _write_report(store, out_dir)


def _write_report(store: Path, out_dir: Path) -> None:
    from surrogate_al.report import write_report

    files = write_report(store, out_dir)
    click.echo(f"report: {out_dir} ({len(files)} files: {', '.join(p.name for p in files)})")


@cli.command()
@click.argument("store", type=click.Path(path_type=Path))
@click.argument("inputs", type=click.Path(path_type=Path))
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="CSV to write (default: stdout).")
def predict(store: Path, inputs: Path, output: Path | None) -> None:
    """Predict with the campaign's last surrogate at the points in INPUTS (CSV with input columns)."""
    from surrogate_al.report import predict_csv

    text = predict_csv(store, inputs)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"predictions: {output}")


@cli.command()
@click.argument("store", type=click.Path(path_type=Path))
@click.option("--format", "fmt", type=click.Choice(["csv", "npz"]), default="csv", show_default=True)
@click.option("-o", "--output", type=click.Path(path_type=Path), default=None, help="File to write (default: next to the store).")
@click.option("--all-attempts", is_flag=True, help="Every attempt, not only the run that settled each proposal.")
def export(store: Path, fmt: str, output: Path | None, all_attempts: bool) -> None:
    """Export the runs (inputs, outputs, status, timings) as CSV or NPZ."""
    from surrogate_al.report import export_runs

    target = output or store.with_suffix(f".{fmt}")
    export_runs(store, target, fmt=fmt, all_attempts=all_attempts)
    click.echo(f"exported: {target}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``surrogate-al`` console script."""
    try:
        cli.main(args=argv, prog_name="surrogate-al", standalone_mode=False)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.exceptions.Abort:
        _fail(1, "aborted")
    except click.UsageError as exc:
        _fail(2, f"{exc.format_message()} (see surrogate-al --help)")
    except BAD_INPUT as exc:
        _fail(2, str(exc))
    except (CampaignError, DispatchError) as exc:
        _fail(1, str(exc))
    except StoreError as exc:
        _fail(1, str(exc))
    except SurrogateALError as exc:
        _fail(1, str(exc))
    except FileNotFoundError as exc:
        _fail(2, f"{exc.filename}: no such file")
    except OSError as exc:  # e.g. an output directory that cannot be written
        logging.getLogger(__name__).debug("OS error", exc_info=True)
        where = f"{exc.filename}: " if exc.filename else ""
        _fail(1, f"{where}{exc.strerror or exc} (run with -vv for the traceback)")
    except KeyboardInterrupt:
        _fail(1, "interrupted")


if __name__ == "__main__":
    main()
