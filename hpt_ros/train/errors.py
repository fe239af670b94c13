"""The training error, shared by the run and the policy set-up."""

from __future__ import annotations

__all__ = ["TrainError"]


class TrainError(RuntimeError):
    """A run cannot start or continue (bad input, nothing to train on, incompatible resume)."""
