"""surrogate_al: active-learning campaigns that build surrogate models of expensive simulators."""

from __future__ import annotations

from typing import Any

from surrogate_al.errors import SurrogateALError

__version__ = "0.1.0"

__all__ = ["Campaign", "Dimension", "InputSpace", "SurrogateALError", "__version__"]

# Loaded on first use: `import surrogate_al.store` (CLI start-up, kill tests) must not pay
# for scipy and torch imports it does not need.
_LAZY = {
    "Dimension": "surrogate_al.space",
    "InputSpace": "surrogate_al.space",
    "Campaign": "surrogate_al.campaign",
}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'surrogate_al' has no attribute {name!r}")
