"""The engine interface: raw camera frames + joint state in, unnormalised action chunk out."""

from __future__ import annotations

import abc
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from hpt_ros.spec import RobotSpec

__all__ = ["Engine", "EngineError", "check_model_sizes"]


class EngineError(RuntimeError):
    """An engine could not be built or failed to run (names the file or provider)."""


class Engine(abc.ABC):
    """Runs one HPT policy. Implementations: torch and onnxruntime.

    ``predict(images, state)``:
      images  uint8 [B, V, H, W, 3] RGB, any H x W (resized inside to the encoder's size)
      state   float32 [B, state_dim], raw units in the spec's joint order
      returns float32 [B, horizon, action_dim], unnormalised (the spec's action units)
    """

    #: "torch" | "onnxruntime"
    backend: str = "abstract"
    #: "fp32" | "bf16" | "fp16"
    precision: str = "fp32"
    horizon: int
    action_dim: int
    state_dim: int
    num_views: int
    #: how the model's recorded spec fields compare with the spec it was loaded under
    #: (``hpt_ros.spec.compat.SpecComparison``, set by ``load_engine``; None: not compared)
    spec_comparison: Any = None

    @abc.abstractmethod
    def predict(self, images: np.ndarray, state: np.ndarray) -> np.ndarray: ...

    def warmup(self, height: int = 480, width: int = 640, iterations: int = 2) -> None:
        """Run a few dummy steps so the first control tick is not the slow one."""
        images = np.zeros((1, self.num_views, height, width, 3), dtype=np.uint8)
        state = np.zeros((1, self.state_dim), dtype=np.float32)
        for _ in range(iterations):
            self.predict(images, state)

    def describe(self) -> str:
        return f"{self.backend} {self.precision}"


def check_model_sizes(file: str | Path, found: dict[str, Any], spec: RobotSpec) -> None:
    """Refuse a model (``found``: its sizes) whose state, action, horizon or views differ from ``spec``'s."""
    wanted = {
        "state_dim": spec.state_dim,
        "action_dim": spec.action.dim,
        "action_horizon": spec.action.horizon,
        "num_views": spec.num_views,
    }
    bad = [f"{k} {found[k]} (spec {spec.name!r} needs {v})" for k, v in wanted.items() if found.get(k) != v]
    if bad:
        raise EngineError(f"{file}: model does not fit robot spec {spec.source}: " + "; ".join(bad))
