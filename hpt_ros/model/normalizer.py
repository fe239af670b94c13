"""'Limits' normaliser: maps each dimension's [min, max] onto [-1, 1].

``scale = 2 / (max - min)``, ``offset = -1 - scale * min``;
``normalize(x) = x * scale + offset``, ``unnormalize(y) = (y - offset) / scale``.
It works per single-step dimension on the last axis, so an action chunk [B, H, A] is
(un)normalised with the A-dim parameters.

Constant dimensions (``max - min < range_eps``) would get an enormous scale. As upstream
HPT (and diffusion_policy) do, such a dimension gets ``scale = 1`` and
``offset = -min``: the constant maps to 0 and ``unnormalize`` gives it back exactly.

The parameters are buffers, so they travel with ``state_dict`` and are baked into an
ONNX export. Names mirror upstream (``scale``, ``offset``, ``input_stats.{min,max,mean,std}``);
mean and std are stored for reference only and have no effect in limits mode.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["DomainNormalizer", "InputStats", "LimitsNormalizer"]

DEFAULT_RANGE_EPS = 1e-4


class InputStats(nn.Module):
    """Statistics of the data the normaliser was fitted on (buffers min, max, mean, std)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.register_buffer("max", torch.ones(dim))
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("min", -torch.ones(dim))
        self.register_buffer("std", torch.ones(dim))


class LimitsNormalizer(nn.Module):
    """Per-dimension affine map of [min, max] to [-1, 1]; identity until fitted."""

    scale: torch.Tensor
    offset: torch.Tensor

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.dim = dim
        self.register_buffer("offset", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(dim))
        self.input_stats = InputStats(dim)

    @classmethod
    def fit_limits(cls, data: Any, range_eps: float = DEFAULT_RANGE_EPS) -> LimitsNormalizer:
        """A normaliser fitted on ``data`` [..., dim] (numpy array or tensor)."""
        array = np.asarray(data, dtype=np.float64)
        if array.ndim == 0 or array.size == 0:
            raise ValueError("fit_limits needs a non-empty array [..., dim]")
        norm = cls(array.shape[-1])
        norm.set_limits(
            array.reshape(-1, array.shape[-1]).min(0),
            array.reshape(-1, array.shape[-1]).max(0),
            mean=array.reshape(-1, array.shape[-1]).mean(0),
            std=array.reshape(-1, array.shape[-1]).std(0),
            range_eps=range_eps,
        )
        return norm

    @torch.no_grad()
    def set_limits(
        self,
        minimum: Any,
        maximum: Any,
        *,
        mean: Any = None,
        std: Any = None,
        range_eps: float = DEFAULT_RANGE_EPS,
    ) -> None:
        """Set the limits (and optional stats) in place; computes scale and offset in float64."""
        lo = np.asarray(minimum, dtype=np.float64).reshape(-1)
        hi = np.asarray(maximum, dtype=np.float64).reshape(-1)
        if lo.shape != (self.dim,) or hi.shape != (self.dim,):
            raise ValueError(f"limits must have {self.dim} values, got {lo.shape} and {hi.shape}")
        if np.any(~np.isfinite(lo)) or np.any(~np.isfinite(hi)) or np.any(hi < lo):
            raise ValueError(f"limits must be finite with max >= min: min={lo}, max={hi}")
        span = hi - lo
        constant = span < range_eps
        scale = np.where(constant, 1.0, 2.0 / np.where(constant, 1.0, span))
        offset = np.where(constant, -lo, -1.0 - scale * lo)
        stats = self.input_stats
        for buffer, value in (
            (self.scale, scale),
            (self.offset, offset),
            (stats.min, lo),
            (stats.max, hi),
            (stats.mean, (lo + hi) / 2 if mean is None else mean),
            (stats.std, np.ones(self.dim) if std is None else std),
        ):
            buffer.copy_(torch.as_tensor(np.asarray(value, dtype=np.float64).reshape(-1)))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Raw values [..., dim] -> normalised."""
        return x * self.scale.to(x.dtype) + self.offset.to(x.dtype)

    def unnormalize(self, y: torch.Tensor) -> torch.Tensor:
        """Normalised values [..., dim] -> raw."""
        return (y - self.offset.to(y.dtype)) / self.scale.to(y.dtype)

    def stats_dict(self) -> dict[str, list[float]]:
        """All buffers as plain lists (for YAML / reports)."""
        stats = self.input_stats
        return {
            "min": stats.min.tolist(),
            "max": stats.max.tolist(),
            "mean": stats.mean.tolist(),
            "std": stats.std.tolist(),
            "scale": self.scale.tolist(),
            "offset": self.offset.tolist(),
        }


class DomainNormalizer(nn.Module):
    """One domain's normalisers, under upstream's ``params_dict.{action,state}`` names."""

    def __init__(self, action_dim: int, state_dim: int) -> None:
        super().__init__()
        self.params_dict = nn.ModuleDict(
            {"action": LimitsNormalizer(action_dim), "state": LimitsNormalizer(state_dim)}
        )

    @property
    def action(self) -> LimitsNormalizer:
        return self.params_dict["action"]  # type: ignore[return-value]

    @property
    def state(self) -> LimitsNormalizer:
        return self.params_dict["state"]  # type: ignore[return-value]
