"""Task keys of simulator runs: unique per store, valid Dask keys, bounded; outcomes name their run.

The dispatcher tests use a real in-process LocalCluster and a second client
that reaches its scheduler by address, as a second campaign would.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from dask.core import validate_key

from surrogate_al.config import parse_workflow
from surrogate_al.dispatch import Dispatcher, RunOutcome, run_key
from surrogate_al.dispatch.runs import KEY_NAME_LENGTH, KEY_STORE_ID_LENGTH
from surrogate_al.simulation import PythonSimulator

STORE_A = "0123456789abcdef0123456789abcdef"
STORE_B = "fedcba9876543210fedcba9876543210"


def _echo(x1: float) -> dict[str, float]:
    return {"y": x1}


def test_run_key_differs_per_store_and_stays_a_valid_bounded_key() -> None:
    a = run_key("workflow", 3, 1, store_id=STORE_A)
    b = run_key("workflow", 3, 1, store_id=STORE_B)
    assert a != b
    assert STORE_A in a and STORE_B in b
    assert run_key("workflow", 3, 2, store_id=STORE_A) != a
    assert run_key("workflow", 4, 1, store_id=STORE_A) != a
    long = run_key("ü" * 500 + "/name with spaces", 10**9, 99, store_id=STORE_A)
    for key in (a, b, long):
        validate_key(key)
        assert re.fullmatch(r"sim-[A-Za-z0-9_.-]+-p\d+-a\d+", key), key
    assert len(long) == 4 + KEY_NAME_LENGTH + 1 + KEY_STORE_ID_LENGTH + len(f"-p{10**9}-a99")


@pytest.mark.parametrize("store_id", ["", "a/b", "id with space", "x\n"])
def test_run_key_refuses_a_missing_or_unsafe_store_id(store_id: str) -> None:
    with pytest.raises(ValueError, match=r"store_id = .* must be a non-empty id"):
        run_key("workflow", 0, 1, store_id=store_id)


def _cluster_spec(tmp_path: Path, cluster: dict[str, Any]) -> Any:
    data = {
        "campaign": {"budget": 4, "store": str(tmp_path / "workflow.h5")},
        "simulator": {"kind": "python", "function": "simulators.branin:run", "outputs": ["y"],
                      "inputs": {"x1": {"low": 0.0, "high": 1.0}}},
        "cluster": cluster,
    }
    return parse_workflow(data, tmp_path, "workflow.toml").cluster


def test_two_campaigns_of_one_name_on_one_scheduler_get_their_own_results(tmp_path: Path) -> None:
    simulator = PythonSimulator(_echo, ["x1"], ["y"])
    local = _cluster_spec(tmp_path, {"kind": "local", "workers": 1, "processes": False})
    with Dispatcher(local, "workflow", store_id=STORE_A) as first:
        address = _cluster_spec(tmp_path, {"kind": "address", "address": first.scheduler_address})
        with Dispatcher(address, "workflow", store_id=STORE_B) as second:
            fa = first.submit(simulator, {"x1": 0.1}, proposal_id=0, attempt=1)
            fb = second.submit(simulator, {"x1": 0.9}, proposal_id=0, attempt=1)
            assert fa.key != fb.key
            a, b = fa.result(timeout=60), fb.result(timeout=60)
    for outcome, future, x1 in ((a, fa, 0.1), (b, fb, 0.9)):
        assert isinstance(outcome, RunOutcome)
        assert (outcome.key, outcome.proposal_id, outcome.attempt) == (future.key, 0, 1)
        assert outcome.result.status == "ok" and outcome.result.outputs == {"y": x1}


def test_a_dispatcher_without_a_store_id_still_keys_apart_from_another() -> None:
    spec: Any = None  # never started: only the keys are compared
    one, two = Dispatcher(spec, "workflow"), Dispatcher(spec, "workflow")
    assert one.store_id != two.store_id
    with pytest.raises(ValueError, match="store_id"):
        Dispatcher(spec, "workflow", store_id="a b")
