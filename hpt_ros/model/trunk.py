"""The shared HPT trunk: a pre-norm transformer with upstream parameter names.

``Trunk().state_dict()`` has exactly the keys of an upstream ``trunk.pth``
(``trunk.blocks.{i}.attn.in_proj_weight``, ``...attn.bias_k``, ``...norm_1.weight``,
``...mlp.fc1.weight``, ...), so such a file loads with ``strict=True``. Inside an HPT
policy the same keys appear under ``trunk.trunk.blocks...``.

Each block: ``x += MHA(LN1(x))`` then ``x += MLP(LN2(x))``; LayerNorm eps 1e-6, GELU (erf),
torch ``nn.MultiheadAttention`` with ``add_bias_kv`` (one learned extra key/value), no
attention mask and no final norm. Tokens are batch-first here; ``batch_first`` only
transposes around the same computation, so results equal upstream's [L, B, D] run.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["BLOCK_KEY_ORDER", "DropPath", "Trunk", "TrunkBlock", "TrunkMLP", "TransformerStack"]

BLOCK_KEY_ORDER: tuple[str, ...] = (
    "attn.in_proj_weight",
    "attn.in_proj_bias",
    "attn.bias_k",
    "attn.bias_v",
    "attn.out_proj.weight",
    "attn.out_proj.bias",
    "norm_1.weight",
    "norm_1.bias",
    "mlp.fc1.weight",
    "mlp.fc1.bias",
    "mlp.fc2.weight",
    "mlp.fc2.bias",
    "norm_2.weight",
    "norm_2.bias",
)
"""The 14 state-dict entries of one block, in upstream order."""

_LN_EPS = 1e-6


class DropPath(nn.Module):
    """Stochastic depth on a residual branch (training only; identity in eval)."""

    def __init__(self, p: float = 0.0) -> None:
        super().__init__()
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        keep = 1.0 - self.p
        mask = x.new_empty((x.shape[0],) + (1,) * (x.dim() - 1)).bernoulli_(keep)
        return x * mask / keep


class TrunkMLP(nn.Module):
    """fc1 -> GELU(erf) -> fc2."""

    def __init__(self, dim: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.act(self.fc1(x)))


class TrunkBlock(nn.Module):
    """One pre-norm transformer block. Registration order fixes the upstream key order."""

    def __init__(self, dim: int, num_heads: int, mlp_ratio: float = 4.0, drop_path: float = 0.0):
        super().__init__()
        self.attn = nn.MultiheadAttention(dim, num_heads, add_bias_kv=True, batch_first=True)
        self.norm_1 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.mlp = TrunkMLP(dim, int(dim * mlp_ratio))
        self.norm_2 = nn.LayerNorm(dim, eps=_LN_EPS)
        self.drop_path = DropPath(drop_path)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [B, L, D] -> [B, L, D]."""
        h = self.norm_1(x)
        x = x + self.drop_path(self.attn(h, h, h, need_weights=False)[0])
        return x + self.drop_path(self.mlp(self.norm_2(x)))


class TransformerStack(nn.Module):
    """``blocks``: the list of trunk blocks (upstream ``SimpleTransformer``)."""

    def __init__(
        self,
        dim: int,
        num_blocks: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        # Stochastic depth grows linearly with depth, as upstream.
        rates = torch.linspace(0, drop_path, num_blocks, device="cpu").tolist()
        self.blocks = nn.ModuleList(
            TrunkBlock(dim, num_heads, mlp_ratio, rate) for rate in rates
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for block in self.blocks:
            x = block(x)
        return x


class Trunk(nn.Module):
    """The trunk as stored in ``trunk.pth``: a module whose ``.trunk`` holds ``.blocks``."""

    def __init__(
        self,
        embed_dim: int,
        num_blocks: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        drop_path: float = 0.0,
    ) -> None:
        super().__init__()
        self.embed_dim = embed_dim
        self.num_blocks = num_blocks
        self.num_heads = num_heads
        self.trunk = TransformerStack(embed_dim, num_blocks, num_heads, mlp_ratio, drop_path)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens [B, L, D] -> [B, L, D]."""
        return self.trunk(tokens)

    def forward_blocks(self, tokens: torch.Tensor) -> list[torch.Tensor]:
        """The output of every block, in order (the last one is the trunk output)."""
        outputs = []
        for block in self.trunk.blocks:
            tokens = block(tokens)
            outputs.append(tokens)
        return outputs

    def num_params(self) -> int:
        """Parameters and buffers in ``trunk.pth`` (the trunk has no buffers)."""
        return sum(t.numel() for t in self.state_dict().values())
