"""State dicts <-> bytes, as data only (checkpoints, remote fits).

``torch.save`` of plain containers, tensors and numbers; read back with
``weights_only=True``, which refuses anything but tensors and plain data, so a
checkpoint can never carry executable objects (no pickles of live objects).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

__all__ = ["state_to_bytes", "state_from_bytes"]


def state_to_bytes(state: Mapping[str, Any]) -> bytes:
    """Serialise a state dict of tensors, arrays and plain values to bytes."""
    import torch

    buffer = io.BytesIO()
    torch.save(dict(state), buffer)
    return buffer.getvalue()


def state_from_bytes(payload: bytes) -> dict[str, Any]:
    """Inverse of :func:`state_to_bytes`."""
    import torch

    return torch.load(io.BytesIO(payload), weights_only=True)
