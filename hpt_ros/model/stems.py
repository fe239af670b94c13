"""Per-modality stems: raw features -> a fixed number of latent tokens of trunk width.

A stem adds a fixed sinusoidal position table to its input (in the input's own width),
runs an MLP (Linear -> SiLU -> ... -> Linear to ``embed_dim``), and lets learned latent
``tokens`` cross-attend to the MLP output. Parameter names follow upstream HPT
(``net.0``, ``net.2``, ``tokens``, ``cross_attention.to_q/to_kv/to_out``).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from .posemb import sinusoid_table

__all__ = ["CrossAttention", "Stem", "stem_mlp"]

# Upstream draws the latent tokens from N(0, 1) * 0.02.
_TOKEN_INIT_STD = 0.02


def stem_mlp(input_dim: int, widths: Sequence[int], output_dim: int) -> nn.Sequential:
    """Linear -> SiLU per hidden width, then a final Linear (indices 0, 2, ...)."""
    layers: list[nn.Module] = []
    width_in = input_dim
    for width in widths:
        layers += [nn.Linear(width_in, width), nn.SiLU()]
        width_in = width
    layers.append(nn.Linear(width_in, output_dim))
    return nn.Sequential(*layers)


class CrossAttention(nn.Module):
    """Multi-head attention of queries ``x`` over ``context``; no norm, no residual.

    ``to_kv`` packs keys (first half of its output) and values (second half).
    """

    def __init__(self, dim: int, heads: int = 8, dim_head: int = 64, dropout: float = 0.0) -> None:
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.scale = dim_head**-0.5
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim)
        self.dropout = nn.Dropout(dropout)  # on attention weights; training only

    def forward(self, x: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        """x [B, Q, D], context [B, N, D] -> [B, Q, D]."""
        batch, num_q, _ = x.shape
        q = self.to_q(x)
        k, v = self.to_kv(context).chunk(2, dim=-1)
        # [B, L, H*Dh] -> [B, H, L, Dh]
        q, k, v = (t.reshape(batch, t.shape[1], self.heads, -1).transpose(1, 2) for t in (q, k, v))
        attn = (q @ k.transpose(-2, -1) * self.scale).softmax(dim=-1)
        out = self.dropout(attn) @ v
        return self.to_out(out.transpose(1, 2).reshape(batch, num_q, -1))


class Stem(nn.Module):
    """One modality's stem.

    Args:
        input_dim: width of one input token (512 for ResNet features, state_dim for state).
        num_positions: input tokens per sample; the position table has this many rows.
        widths: hidden widths of the MLP.
        embed_dim: trunk width D.
        num_latents: learned latent tokens (trunk tokens this stem contributes).
    """

    def __init__(
        self,
        input_dim: int,
        num_positions: int,
        widths: Sequence[int],
        embed_dim: int,
        num_latents: int,
        heads: int = 8,
        dim_head: int = 64,
        dropout: float = 0.0,
    ) -> None:
        super().__init__()
        self.input_dim = input_dim
        self.num_positions = num_positions
        self.net = stem_mlp(input_dim, widths, embed_dim)
        self.tokens = nn.Parameter(torch.randn(1, num_latents, embed_dim) * _TOKEN_INIT_STD)
        self.cross_attention = CrossAttention(embed_dim, heads, dim_head, dropout)
        # Fixed, so not saved: upstream state dicts have no such key.
        self.register_buffer(
            "posemb", sinusoid_table(num_positions, input_dim), persistent=False
        )

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, num_positions, input_dim] -> context tokens [B, num_positions, D]."""
        return self.net(x + self.posemb.to(x.dtype))

    def compress(self, context: torch.Tensor) -> torch.Tensor:
        """Context [B, N, D] -> latent tokens [B, num_latents, D]."""
        queries = self.tokens.expand(context.shape[0], -1, -1)
        return self.cross_attention(queries, context)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, num_positions, input_dim] -> [B, num_latents, D]."""
        return self.compress(self.embed(x))
