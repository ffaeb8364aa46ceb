"""The registry's option tables are the constructors' signatures, written as data."""

from __future__ import annotations

import inspect

from surrogate_al.policies import POLICY_CLASSES
from surrogate_al.registry import POLICY_OPTIONS, SURROGATE_OPTIONS
from surrogate_al.surrogates import SURROGATES


def keyword_names(fn: object, skip: tuple[str, ...] = ()) -> tuple[str, ...]:
    kinds = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = inspect.signature(fn).parameters.values()  # type: ignore[arg-type]
    assert not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params)
    return tuple(p.name for p in params if p.kind in kinds and p.name not in skip)


def test_surrogate_options_are_the_constructor_arguments() -> None:
    assert set(SURROGATE_OPTIONS) == set(SURROGATES)
    for kind, cls in SURROGATES.items():
        assert SURROGATE_OPTIONS[kind] == keyword_names(cls), kind


def test_policy_options_are_the_constructor_arguments() -> None:
    assert set(POLICY_OPTIONS) == set(POLICY_CLASSES)
    for name, cls in POLICY_CLASSES.items():
        assert POLICY_OPTIONS[name] == keyword_names(cls.__init__, ("self", "surrogate")), name
