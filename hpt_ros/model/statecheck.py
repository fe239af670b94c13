"""Strict comparison of a state dict against what a module expects."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import torch

from .errors import CheckpointError

__all__ = ["check_state_dict"]


def check_state_dict(
    file: str | Path,
    state: Mapping[str, object],
    expected: Mapping[str, torch.Tensor],
    problem: str,
) -> None:
    """Raise ``CheckpointError`` unless ``state`` has exactly ``expected``'s keys and shapes.

    ``expected`` may hold meta tensors: only names and shapes are compared.
    """
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    mismatched: list[tuple[str, tuple, tuple]] = []
    for key, target in expected.items():
        value = state.get(key)
        if value is None:
            continue
        if not isinstance(value, torch.Tensor):
            mismatched.append((key, (type(value).__name__,), tuple(target.shape)))
        elif tuple(value.shape) != tuple(target.shape):
            mismatched.append((key, tuple(value.shape), tuple(target.shape)))
    if missing or unexpected or mismatched:
        raise CheckpointError(
            file, problem, missing=missing, unexpected=unexpected, mismatched=mismatched
        )
