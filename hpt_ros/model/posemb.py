"""Fixed sinusoidal position tables, bit-identical to upstream HPT's float32 version.

Row ``p``, dim ``i``: ``sin(p * w_i)`` for even ``i`` and ``cos(p * w_i)`` for odd ``i``,
with ``w_i = 1 / 10000 ** (2 * floor(i / 2) / dim)``. The frequencies are computed in
float32 with ``torch.pow`` and then inverted; that exact order of operations reproduces
the upstream tables bit for bit (computing ``10000 ** -x`` directly differs by ~1e-6).
"""

from __future__ import annotations

import torch

__all__ = ["sinusoid_table"]


def sinusoid_table(num_positions: int, dim: int, start: int = 0) -> torch.Tensor:
    """Float32 table [num_positions, dim] for positions ``start .. start + num_positions - 1``."""
    pair_index = torch.arange(0, dim, 2, dtype=torch.float32)  # 2 * floor(i / 2)
    frequency = 1.0 / torch.pow(10000.0, pair_index / dim)
    positions = torch.arange(start, start + num_positions, dtype=torch.float32)[:, None]
    angles = positions * frequency  # [P, ceil(dim / 2)]
    table = torch.empty(num_positions, dim, dtype=torch.float32)
    table[:, 0::2] = torch.sin(angles)
    table[:, 1::2] = torch.cos(angles[:, : dim // 2])
    return table
