"""Unit tests for surrogate_al.simulation.result: what one run returns."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from surrogate_al.errors import DataError
from surrogate_al.simulation import SimulationResult


def _result(**overrides: object) -> SimulationResult:
    kw: dict[str, object] = dict(
        status="ok",
        outputs={"y": 1.5, "z": np.float64(-2.0)},
        stdout_tail="out",
        stderr_tail="err",
        wall_time=0.25,
        host="node7",
        pid=1234,
        started_at=1_700_000_000.0,
        finished_at=1_700_000_000.25,
        workdir=None,
    )
    kw.update(overrides)
    return SimulationResult(**kw)  # type: ignore[arg-type]


def test_result_round_trips_through_json() -> None:
    for res in (_result(), _result(status="timeout", outputs={}, reason="timed out after 1.0 s", workdir="/r/1")):
        data = json.loads(json.dumps(res.to_dict()))
        back = SimulationResult.from_dict(data)
        assert back == res
        assert type(back.outputs["y"] if back.ok else 0.0) is float


def test_result_ok_property_and_plain_types() -> None:
    res = _result()
    assert res.ok
    assert not _result(status="failed", outputs={}, reason="exit code 1").ok
    assert res.outputs == {"y": 1.5, "z": -2.0}
    assert all(type(v) is float for v in res.outputs.values())
    with pytest.raises(AttributeError):
        res.status = "failed"  # type: ignore[misc]


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"status": "crashed"}, "status = 'crashed'"),
        ({"reason": "why"}, "reason must be ''"),
        ({"status": "failed", "reason": "exit code 1"}, "only ok results carry outputs"),
        ({"status": "failed", "outputs": {}}, "needs a reason"),
        ({"outputs": {"y": math.nan}}, r"outputs\['y'\] is nan"),
        ({"outputs": {"y": "abc"}}, r"outputs\['y'\] is not a number"),
        ({"outputs": [1.0]}, "must be a mapping"),
        ({"pid": "12"}, "pid = '12' must be a number"),
    ],
)
def test_result_rejects_inconsistent_fields(overrides: dict[str, object], match: str) -> None:
    with pytest.raises(DataError, match=match):
        _result(**overrides)


def test_result_from_dict_names_missing_and_unknown_keys() -> None:
    data = _result().to_dict()
    del data["host"]
    data["colour"] = "blue"
    with pytest.raises(DataError, match=r"missing keys \['host'\], unknown keys \['colour'\]"):
        SimulationResult.from_dict(data)
