"""The per-embodiment action head: pooled trunk feature -> normalised action chunk.

Upstream layout (``net`` indices 0, 2, 4, 6 for widths (256, 128)):
Linear -> SiLU, then per further width Linear -> Dropout -> LayerNorm(eps 1e-5) -> SiLU,
then Linear to ``horizon * action_dim`` -> Tanh. The output is horizon-major and lies
in the normaliser's [-1, 1] space.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

__all__ = ["ActionHead"]


class ActionHead(nn.Module):
    """MLP head with dropout, LayerNorm and a final tanh."""

    def __init__(
        self, input_dim: int, widths: Sequence[int], output_dim: int, dropout: float = 0.1
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Linear(input_dim, widths[0]), nn.SiLU()]
        for width_in, width_out in zip(widths[:-1], widths[1:]):
            layers.append(nn.Linear(width_in, width_out))
            if dropout > 0:  # upstream has the layer only when dropout is on
                layers.append(nn.Dropout(dropout))
            layers += [nn.LayerNorm(width_out), nn.SiLU()]
        layers += [nn.Linear(widths[-1], output_dim), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        """feature [B, D] -> normalised actions [B, horizon * action_dim]."""
        return self.net(feature)
