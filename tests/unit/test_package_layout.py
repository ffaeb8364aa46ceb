"""The package keeps one job per module: no module outgrows ~700 lines, and comments carry no diary."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "surrogate_al"
MODULES = sorted(PACKAGE.rglob("*.py"))
MAX_LINES = 700
DIARY = re.compile(r"(first|second|third|[a-z]+th|[0-9]+(st|nd|rd|th)) session", re.IGNORECASE)


def test_the_package_has_modules() -> None:
    assert len(MODULES) > 50


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_is_at_most_700_lines(module: Path) -> None:
    lines = module.read_text(encoding="utf-8").count("\n")
    assert lines <= MAX_LINES, f"{module.relative_to(PACKAGE)} has {lines} lines; split it by job"


@pytest.mark.parametrize("module", MODULES, ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_narrates_no_session_history(module: Path) -> None:
    hits = [line.strip() for line in module.read_text(encoding="utf-8").splitlines() if DIARY.search(line)]
    assert not hits, f"{module.relative_to(PACKAGE)}: {hits} (the history belongs in git, the evidence in docs/decisions.md)"
