"""Input space: bounds, scales, transforms, designs, validation."""

from __future__ import annotations

import math

import numpy as np
import pytest

from surrogate_al.errors import ShapeError, SpaceError
from surrogate_al.space import Dimension, InputSpace


@pytest.fixture()
def space() -> InputSpace:
    return InputSpace([Dimension("a", -5.0, 10.0), Dimension("k", 1e-3, 10.0, "log")])


def test_round_trip_through_unit_cube(space: InputSpace) -> None:
    X = space.design("sobol", 64, seed=1)
    U = space.to_unit(X)
    assert U.min() >= 0.0 and U.max() <= 1.0
    np.testing.assert_allclose(space.from_unit(U), X, rtol=1e-12)


def test_log_scale_is_uniform_in_log(space: InputSpace) -> None:
    X = space.from_unit(np.array([[0.0, 0.0], [0.5, 0.5], [1.0, 1.0]]))
    assert X[0, 1] == pytest.approx(1e-3)
    assert X[1, 1] == pytest.approx(math.sqrt(1e-3 * 10.0))  # geometric midpoint
    assert X[2, 1] == pytest.approx(10.0)
    assert X[1, 0] == pytest.approx(2.5)  # arithmetic midpoint on the linear axis


@pytest.mark.parametrize("kind", ["sobol", "lhs", "random"])
def test_designs_are_reproducible_and_inside(space: InputSpace, kind: str) -> None:
    a = space.design(kind, 20, seed=7)
    b = space.design(kind, 20, seed=7)
    c = space.design(kind, 20, seed=8)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)
    assert a.shape == (20, 2)
    assert space.contains(a).all()


def test_latin_hypercube_stratifies_every_axis(space: InputSpace) -> None:
    U = space.design_unit("lhs", 10, seed=0)
    for j in range(2):
        assert sorted(np.floor(U[:, j] * 10).astype(int).tolist()) == list(range(10))


def test_sobol_is_more_uniform_than_random() -> None:
    sp = InputSpace.from_bounds({"x": (0, 1), "y": (0, 1)})
    from scipy.stats import qmc

    sobol = qmc.discrepancy(sp.design_unit("sobol", 128, seed=0))
    rand = qmc.discrepancy(sp.design_unit("random", 128, seed=0))
    assert sobol < rand


@pytest.mark.parametrize(
    ("kwargs", "fragment"),
    [
        ({"name": "x", "low": 1.0, "high": 0.0}, "must be smaller than high"),
        ({"name": "x", "low": 1.0, "high": 1.0}, "must be smaller than high"),
        ({"name": "x", "low": 0.0, "high": 1.0, "scale": "log"}, "must be > 0"),
        ({"name": "x", "low": -1.0, "high": 1.0, "scale": "log"}, "must be > 0"),
        ({"name": "x", "low": float("nan"), "high": 1.0}, "finite"),
        ({"name": "x", "low": 0.0, "high": float("inf")}, "finite"),
        ({"name": "x", "low": 0.0, "high": 1.0, "scale": "cubic"}, "expected 'linear' or 'log'"),
        ({"name": "1x", "low": 0.0, "high": 1.0}, "not a valid identifier"),
        ({"name": "x", "low": "0", "high": 1.0}, "must be a number"),
    ],
)
def test_bad_dimensions_are_refused_clearly(kwargs: dict, fragment: str) -> None:
    with pytest.raises(SpaceError, match=fragment) as info:
        Dimension(**kwargs)
    assert "'x'" in str(info.value) or "'1x'" in str(info.value)


def test_duplicate_names_are_refused() -> None:
    with pytest.raises(SpaceError, match=r"duplicate input names \['x'\]"):
        InputSpace([Dimension("x", 0, 1), Dimension("x", 0, 2)])


def test_empty_space_is_refused() -> None:
    with pytest.raises(SpaceError, match="at least one dimension"):
        InputSpace([])


def test_wrong_shape_names_expected_columns(space: InputSpace) -> None:
    with pytest.raises(ShapeError, match=r"expected \(n, 2\) with columns \['a', 'k'\]"):
        space.to_unit(np.zeros((3, 3)))


def test_nan_input_names_the_column(space: InputSpace) -> None:
    with pytest.raises(SpaceError, match="input 'k'"):
        space.to_unit(np.array([[0.0, np.nan]]))


def test_records_round_trip_and_missing_key(space: InputSpace) -> None:
    X = space.design("lhs", 3, seed=0)
    records = space.to_records(X)
    assert records[0].keys() == {"a", "k"}
    np.testing.assert_array_equal(space.from_records(records), X)
    with pytest.raises(SpaceError, match=r"lacks inputs \['k'\]"):
        space.from_records([{"a": 1.0}])


def test_dict_round_trip(space: InputSpace) -> None:
    assert InputSpace.from_dicts(space.to_dicts()) == space


def test_bad_design_arguments(space: InputSpace) -> None:
    with pytest.raises(SpaceError, match="unknown"):
        space.design_unit("grid", 4)  # type: ignore[arg-type]
    with pytest.raises(SpaceError, match="positive integer"):
        space.design_unit("sobol", 0)
