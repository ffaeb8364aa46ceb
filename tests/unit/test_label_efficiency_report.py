"""The label-efficiency benchmark's bookkeeping: what it runs, how it aggregates and reports.

The benchmark itself takes hours (docs/benchmarks.md); these check the parts
whose mistakes would silently misreport it, on hand-made cells with known
answers, plus one real cell on Branin.
"""

from __future__ import annotations

import json
import math
import subprocess
from pathlib import Path

import numpy as np
import pytest

from benchmarks import label_efficiency as le


def _cell(problem: str, method: str, seed: int, runs: list[int], nrmse: list[float]) -> dict:
    return {"version": le.CELL_VERSION, "policy_version": le.METHODS[method].policy_version,
            "problem": problem, "method": method, "seed": seed, "q": 8,
            "test_size": 1000, "runs": runs, "nrmse": nrmse, "failed_runs": 0, "propose_seconds": 1.0,
            "seconds": 2.0}


def test_runs_to_reach_interpolates_in_log_log_and_reports_never() -> None:
    # Error halves from 40 to 80 runs: the target sqrt(2)/2 * e(40) is reached at 40 * sqrt(2) runs.
    runs, curve = [20, 40, 80], [0.4, 0.2, 0.1]
    assert le.runs_to_reach(runs, curve, 0.2) == 40
    assert le.runs_to_reach(runs, curve, 0.2 / math.sqrt(2)) == pytest.approx(40 * math.sqrt(2))
    assert le.runs_to_reach(runs, curve, 0.5) == 20
    assert le.runs_to_reach(runs, curve, 0.05) is None


def test_ladder_holds_every_budget_and_no_count_beyond_the_largest() -> None:
    assert le.ladder((20, 40, 80, 160)) == [20, 28, 40, 56, 80, 112, 160]
    assert le.ladder((20, 40)) == [20, 28, 40]


def test_plan_puts_the_headline_comparison_first_and_q1_only_on_small_problems() -> None:
    cells = le.plan(["branin", "hartmann6"], ["qnipv", "default-auto", "default-gp", "sobol"], seeds=2,
                    max_budget=None, q1=True)
    methods = [c[1] for c in cells if c[3] == 8]
    assert methods[:4] == ["sobol"] * 4 and methods[4:8] == ["default-gp"] * 4
    q1 = [c for c in cells if c[3] == 1]
    assert q1 and {c[0] for c in q1} == {"branin"} and all(max(c[4]) <= 80 for c in q1)
    # The adaptive methods run in q = 1 mode too, the headline among them; a space-filling design has no q.
    assert {c[1] for c in q1} == {"qnipv", "default-gp", "default-auto"}
    hartmann = [c for c in cells if c[0] == "hartmann6"]
    assert all(c[4] == (20, 40, 80, 160, 320) for c in hartmann)


def test_a_change_of_the_default_policy_reruns_only_the_cells_built_on_it(tmp_path: Path) -> None:
    runs, curve = [20, 28, 40], [0.3, 0.2, 0.1]
    stale = _cell("branin", "default-gp", 0, runs, curve) | {"policy_version": le.DEFAULT_POLICY_VERSION - 1}
    cells = [_cell("branin", "sobol", 0, runs, curve), _cell("branin", "qnipv", 0, runs, curve),
             _cell("branin", "default-gp", 1, runs, curve), stale]
    (tmp_path / "cells").mkdir()
    for i, cell in enumerate(cells):
        (tmp_path / "cells" / f"{i}.json").write_text(json.dumps(cell))
    assert [(c["method"], c["seed"]) for c in le.load_cells(tmp_path, 1000)] == [
        ("sobol", 0), ("qnipv", 0), ("default-gp", 1)]
    assert not le.is_current(stale, 1000)
    assert not le.is_current(cells[0], 500)  # another test-set size


def test_a_change_of_the_auto_choice_rule_reruns_the_auto_cells_on_its_default() -> None:
    runs, curve = [20, 28, 40], [0.3, 0.2, 0.1]

    def auto_cell(method: str, selection_version: int | None) -> dict:
        spec = le.METHODS[method]
        cell = _cell("branin", method, 0, runs, curve) | {"surrogate_version": spec.surrogate_version,
                                                          "evaluation_version": le.AUTO_EVALUATION_VERSION}
        return cell if selection_version is None else cell | {"selection_version": selection_version}

    # A cell from before the rule had a version (no key) counts only for the rows that pin
    # the old rule; the rows on the default need the current version.
    assert not le.is_current(auto_cell("default-auto", None), 1000)
    assert not le.is_current(auto_cell("sobol-auto", None), 1000)
    assert le.is_current(auto_cell("default-auto", le.AUTO_SELECTION_VERSION), 1000)
    assert le.is_current(auto_cell("default-auto-lowest", None), 1000)
    assert le.is_current(auto_cell("sobol-auto-lowest", None), 1000)
    assert not le.is_current(auto_cell("default-auto-lowest", le.AUTO_SELECTION_VERSION), 1000)
    # The GP rows do not depend on it.
    assert le.METHODS["default-gp"].selection_version is None
    # An auto cell measured the old way (a choice kept between reselections) is stale,
    # though its runs are current.
    old = auto_cell("default-auto", le.AUTO_SELECTION_VERSION) | {"evaluation_version": None}
    assert not le.is_current(old, 1000) and le.design_is_current(old, 1000)
    assert le.METHODS["default-gp"].evaluation_version is None
    # A Sobol cell of another rule keeps its runs (the rule only measures them): re-scored.
    other_rule = auto_cell("sobol-auto", le.AUTO_SELECTION_VERSION - 1)
    assert not le.is_current(other_rule, 1000) and le.design_is_current(other_rule, 1000)
    assert not le.design_is_current(auto_cell("default-auto", le.AUTO_SELECTION_VERSION - 1), 1000)


def test_a_cell_with_current_runs_is_rescored_not_rerun(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(le, "CACHE", tmp_path / "cache")
    gp = le.run_cell("branin", "default-gp", seed=0, q=8, budgets=(20,), test_size=200)
    # The same runs as an auto cell measured the old way: its runs stand, its error is measured again.
    spec = le.METHODS["default-auto"]
    old = gp | {"method": "default-auto", "surrogate_version": spec.surrogate_version,
                "selection_version": spec.selection_version, "evaluation_version": None,
                "nrmse": [9.0], "chosen_models": ["?"]}
    path = le.cell_path(tmp_path / "results", "branin", "default-auto", 0, 8)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(old))
    assert le._cell_can_be_rescored(path, (20,), 200) and not le._cell_is_current(path, (20,), 200)
    le.run_plan(tmp_path / "results", [("branin", "default-auto", 0, 8, (20,))], 200, jobs=1, fresh=False)
    new = json.loads(path.read_text())
    assert le.is_current(new, 200) and new["design"] == gp["design"]
    assert new["chosen_models"][0] in ("gp", "ensemble") and 0.0 < new["nrmse"][0] < 1.0
    # Re-scoring a GP cell reproduces it: the measurement is deterministic.
    assert le.rescore_cell(gp, 200)["nrmse"] == pytest.approx(gp["nrmse"], rel=1e-9)
    with pytest.raises(ValueError, match="no current nested design"):
        le.rescore_cell({k: v for k, v in gp.items() if k != "design"}, 200)


def test_aggregate_gives_medians_ratios_and_fraction_of_runs() -> None:
    runs = [20, 28, 40, 56, 80, 112, 160]
    sobol = [0.8, 0.6, 0.4, 0.3, 0.2, 0.15, 0.1]
    cells = []
    for seed, factor in enumerate([0.9, 1.0, 1.1]):
        cells.append(_cell("branin", "sobol", seed, runs, [e * factor for e in sobol]))
        # Ours reaches Sobol's 160-run error (0.1) at 80 runs.
        cells.append(_cell("branin", "default-gp", seed, runs,
                           [e * factor for e in (0.8, 0.5, 0.3, 0.17, 0.1, 0.07, 0.05)]))
    result = le.aggregate(cells)
    cur = result["curves"]["branin"]["8"]["default-gp"]
    assert cur["median"][runs.index(80)] == pytest.approx(0.1)
    assert cur["q25"][runs.index(80)] == pytest.approx(0.095)
    s = result["summary"]["branin"]["8"]["default-gp"]
    assert s["ratio_to_sobol"]["40"] == pytest.approx(0.75)
    assert s["ratio_to_sobol"]["160"] == pytest.approx(0.5)
    assert set(s["ratio_to_sobol"]) == {"20", "40", "80", "160"}  # ladder steps are not budgets
    assert s["runs_to_reach_sobol_largest"] == pytest.approx(80)
    assert s["fraction_of_largest_budget"] == pytest.approx(0.5)
    text = le.markdown(result)
    assert "| branin | 0.75 | 50% |" in text
    assert result["median_fraction"]["default-gp"] == pytest.approx(0.5)


def test_one_real_cell_on_branin_and_the_report_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(le, "CACHE", tmp_path / "cache")
    cell = le.run_cell("branin", "default-gp", seed=0, q=8, budgets=(20,), test_size=200)
    assert cell["runs"] == [20] and len(cell["nrmse"]) == 1
    assert 0.0 < cell["nrmse"][0] < 1.0  # 20 runs of a GP on Branin beat the mean predictor
    # The runs are kept, in order, so a new model can be scored on them without re-running.
    U, Y = np.array(cell["design"]["U"]), np.array(cell["design"]["Y"], dtype=float)
    assert U.shape == (20, 2) and Y.shape == (20, 1) and ((U >= 0) & (U <= 1)).all()
    assert le.nrmse("gp", U, Y, le.test_set("branin", 200), seed=0) == pytest.approx(cell["nrmse"][0], rel=1e-6)
    assert (tmp_path / "cache" / f"branin_n200_seed{le.TEST_SEED}.npz").exists()
    root = tmp_path / "results"
    path = le.cell_path(root, "branin", "default-gp", 0, 8)
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(cell))
    sobol = dict(cell, method="sobol", policy_version=None, nrmse=[cell["nrmse"][0] * 2])
    le.cell_path(root, "branin", "sobol", 0, 8).write_text(json.dumps(sobol))
    result = le.report(root, 200, tmp_path / "figures")
    assert (root / "label_efficiency.json").exists() and (root / "label_efficiency.md").exists()
    assert (tmp_path / "figures" / "branin.png").stat().st_size > 1000
    assert result["summary"]["branin"]["8"]["default-gp"]["ratio_to_sobol"]["20"] == pytest.approx(0.5)
    assert np.isfinite(result["curves"]["branin"]["8"]["sobol"]["median"][0])


def test_the_full_runs_cells_are_kept_in_git_and_the_quick_runs_are_not() -> None:
    # The full run's cells are the record behind docs/benchmarks.md; a git-ignored folder
    # is lost with the machine (it was, once: every cell before 2026-12-02).
    repo = Path(__file__).resolve().parents[2]

    def ignored(root: Path) -> bool:
        path = le.cell_path(root, "branin", "sobol", 0, 8)
        return subprocess.run(["git", "check-ignore", "-q", str(path)], cwd=repo).returncode == 0

    assert not ignored(le.RESULTS["full"])
    assert ignored(le.RESULTS["quick"])
