"""HPTPolicy: one embodiment's stems, head and normaliser around the shared trunk.

Submodule names reproduce upstream HPT's ``Policy.state_dict()`` keys for one domain
(``trunk.trunk.blocks.*``, ``stems.<domain>_image.*``, ``stems.<domain>_state.*``,
``heads.<domain>.*``, ``normalizer.<domain>.params_dict.{action,state}.*``), so an
upstream ``model.pth`` loads by name. The optional ``encoder`` (ResNet-18) is not part
of upstream state dicts.

Forward pass, in upstream's order (see the fixtures README):
state normalised -> stems (position table added to each stem input, MLP, latent
cross-attention) -> tokens [image | state] + trunk position table -> trunk -> mean (or,
with ``token_postprocessing: max``, max) over tokens -> head (tanh, normalised space) -> unnormalised per action step
(-> plus the raw input state, with ``action_relative``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from typing import Any

import numpy as np
import torch
from torch import nn

from .config import HPTConfig
from .head import ActionHead
from .normalizer import DomainNormalizer, LimitsNormalizer
from .posemb import sinusoid_table
from .resnet import ImageEncoder
from .stems import Stem
from .trunk import BLOCK_KEY_ORDER, Trunk

__all__ = ["STAGE_NAMES", "HPTPolicy", "tensors_sha256", "trunk_sha256"]

STAGE_NAMES: tuple[str, ...] = (
    "state_normalized",  # [B, state_dim]
    "stem_input_state",  # [B, 1, state_dim]: normalised state + position row 0
    "stem_mlp_out_image",  # [B, V, 49, D]
    "stem_mlp_out_state",  # [B, 1, D]
    "stem_tokens_image",  # [B, 16, D]
    "stem_tokens_state",  # [B, 16, D]
    "trunk_input",  # [B, 32, D]
    # "trunk_block{i}_out" for every block i: [B, 32, D]
    "trunk_output",  # [B, 32, D]
    "pooled_feature",  # [B, D]
    "head_output_normalized_action",  # [B, H * A]
    "action_unnormalized",  # [B, H, A]
)
"""Names ``forward_stages`` returns (shapes without upstream's singleton time axis)."""


def tensors_sha256(tensors: Iterable[torch.Tensor]) -> str:
    """sha256 of the float32, C-contiguous bytes of the tensors, in the given order."""
    digest = hashlib.sha256()
    for tensor in tensors:
        array = tensor.detach().to("cpu", torch.float32).contiguous().numpy()
        digest.update(array.tobytes())
    return digest.hexdigest()


def _trunk_key_rank(key: str) -> tuple[int, int, str]:
    # "trunk.blocks.{i}.{name}" -> (i, position of name in a block, key)
    parts = key.split(".", 3)
    if len(parts) == 4 and parts[:2] == ["trunk", "blocks"] and parts[2].isdigit():
        name = parts[3]
        position = BLOCK_KEY_ORDER.index(name) if name in BLOCK_KEY_ORDER else len(BLOCK_KEY_ORDER)
        return int(parts[2]), position, key
    return 1 << 30, 0, key


def trunk_sha256(state: Mapping[str, torch.Tensor]) -> str:
    """Checksum of trunk weights (``trunk.pth`` key names), independent of dict order.

    Tensors are hashed as float32 bytes in canonical order: block by block, and within
    a block in upstream's key order (``BLOCK_KEY_ORDER``). Key names are not hashed.
    """
    return tensors_sha256(state[key] for key in sorted(state, key=_trunk_key_rank))


class HPTPolicy(nn.Module):
    """HPT policy for one domain (embodiment).

    Args:
        config: sizes of the model.
        encoder: optional ResNet-18 ``ImageEncoder``; needed only by ``forward`` (raw
            frames). ``forward_features`` takes precomputed features.
    """

    def __init__(self, config: HPTConfig, encoder: ImageEncoder | None = None) -> None:
        super().__init__()
        self.config = config
        c = config
        self.trunk = Trunk(c.embed_dim, c.num_blocks, c.num_heads, c.mlp_ratio, c.drop_path)
        stem_args = dict(
            embed_dim=c.embed_dim, heads=c.crossattn_heads, dim_head=c.crossattn_dim_head,
            dropout=c.crossattn_dropout,
        )  # fmt: skip
        self.stems = nn.ModuleDict(
            {
                f"{c.domain}_image": Stem(
                    c.image_feature_dim, c.num_views * c.image_tokens_per_view,
                    c.image_mlp_widths, num_latents=c.latent_tokens_image, **stem_args,
                ),  # fmt: skip
                f"{c.domain}_state": Stem(
                    c.state_dim, 1, c.state_mlp_widths,
                    num_latents=c.latent_tokens_state, **stem_args,
                ),  # fmt: skip
            }
        )
        self.heads = nn.ModuleDict(
            {c.domain: ActionHead(c.embed_dim, c.head_widths, c.action_output_dim, c.head_dropout)}
        )
        self.normalizer = nn.ModuleDict({c.domain: DomainNormalizer(c.action_dim, c.state_dim)})
        self.register_buffer(
            "trunk_posemb", sinusoid_table(c.num_trunk_tokens, c.embed_dim), persistent=False
        )
        if c.image_feature_norm:
            tokens = c.num_views * c.image_tokens_per_view
            self.register_buffer("image_feature_mean", torch.zeros(tokens, c.image_feature_dim))
            self.register_buffer("image_feature_std", torch.ones(tokens, c.image_feature_dim))
        self.register_module("encoder", encoder)
        #: the robot spec fields this model was made for (``hpt_ros.spec.compat.model_fields``); None: unknown
        self.spec_fields: dict[str, Any] | None = None
        #: where the normaliser's limits came from (recorded in checkpoints and ONNX sidecars)
        self.normalizer_source = "identity (never set)"
        self.reset_parameters()

    # -- parts ---------------------------------------------------------------------------

    @property
    def image_stem(self) -> Stem:
        return self.stems[f"{self.config.domain}_image"]  # type: ignore[return-value]

    @property
    def state_stem(self) -> Stem:
        return self.stems[f"{self.config.domain}_state"]  # type: ignore[return-value]

    @property
    def head(self) -> ActionHead:
        return self.heads[self.config.domain]  # type: ignore[return-value]

    @property
    def action_normalizer(self) -> LimitsNormalizer:
        return self.normalizer[self.config.domain].action  # type: ignore[union-attr,return-value]

    @property
    def state_normalizer(self) -> LimitsNormalizer:
        return self.normalizer[self.config.domain].state  # type: ignore[union-attr,return-value]

    @torch.no_grad()
    def set_image_feature_stats(self, mean: Any, std: Any, floor: float = 0.1) -> None:
        """Fit the image-feature standardisation: ``mean``/``std`` [V * 49, 512] of the training features.

        Each std is raised to at least ``floor`` x the mean std, so a channel that never varies
        in the training data cannot turn noise into a large input.
        """
        if not self.config.image_feature_norm:
            raise ValueError("this policy was built without image_feature_norm")
        mean_t = torch.as_tensor(np.asarray(mean), dtype=torch.float32)
        std_t = torch.as_tensor(np.asarray(std), dtype=torch.float32)
        if mean_t.shape != self.image_feature_mean.shape or std_t.shape != self.image_feature_std.shape:
            raise ValueError(f"image feature stats must be {tuple(self.image_feature_mean.shape)}, "
                             f"got {tuple(mean_t.shape)} and {tuple(std_t.shape)}")
        if not (torch.isfinite(mean_t).all() and torch.isfinite(std_t).all()):
            raise ValueError("image feature stats must be finite")
        self.image_feature_mean.copy_(mean_t)
        self.image_feature_std.copy_(torch.clamp(std_t, min=float(floor) * float(std_t.mean()) + 1e-6))

    def reset_parameters(self) -> None:
        """Upstream's final init: xavier-uniform Linear weights, zero biases, unit LayerNorms.

        The trunk's attention keeps torch's own init (upstream leaves it too); a pretrained
        trunk is loaded over all of this anyway.
        """
        parts = (self.trunk, self.stems, self.heads)  # not the encoder: it has its own weights
        for module in (m for part in parts for m in part.modules()):
            if isinstance(module, nn.Linear) and not module.weight.is_meta:
                nn.init.xavier_uniform_(module.weight)
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    # -- forward -------------------------------------------------------------------------

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """Frames [B, V, H, W, 3] -> image features [B, V, 49, 512] via ``encoder``."""
        if self.encoder is None:
            raise RuntimeError(
                "this HPTPolicy has no image encoder; attach one (policy.encoder = "
                "ImageEncoder(...)) or call forward_features with precomputed features"
            )
        batch, views = images.shape[0], images.shape[1]
        tokens = self.encoder(images.reshape((-1,) + tuple(images.shape[2:])))
        return tokens.reshape(batch, views, tokens.shape[1], tokens.shape[2])

    def forward(self, images: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """Frames uint8 [B, V, H, W, 3] RGB and raw state [B, state_dim] -> actions [B, H, A]."""
        return self.forward_features(self.encode_images(images), state)

    def forward_features(
        self, image_features: torch.Tensor, state: torch.Tensor, action_reference: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Image features [B, V, 49, 512] and raw state [B, state_dim] -> raw actions [B, H, A].

        With ``action_relative`` the offsets are added to ``action_reference`` (default: ``state``);
        training passes the clean state there while the stem sees a noisy one.
        """
        return self._run(image_features, state, None, action_reference)

    def forward_stages(
        self, image_features: torch.Tensor, state: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """Every intermediate stage of ``forward_features`` by name (see ``STAGE_NAMES``)."""
        stages: dict[str, torch.Tensor] = {}
        self._run(image_features, state, stages)
        return stages

    def _run(
        self,
        image_features: torch.Tensor,
        state: torch.Tensor,
        stages: dict[str, torch.Tensor] | None,
        action_reference: torch.Tensor | None = None,
    ) -> torch.Tensor:
        c = self.config
        if not torch.jit.is_tracing():  # static shapes; the legacy tracer would only warn
            self._check_inputs(image_features, state)
        batch = image_features.shape[0]
        keep = stages is not None

        state_norm = self.state_normalizer.normalize(state) if c.normalize_state else state
        image_tokens_in = image_features.reshape(batch, -1, c.image_feature_dim)  # row v*49+n
        if c.image_feature_norm:
            image_tokens_in = (image_tokens_in - self.image_feature_mean) / self.image_feature_std
        image_context = self.image_stem.embed(image_tokens_in)
        state_context = self.state_stem.embed(state_norm[:, None, :])
        image_tokens = self.image_stem.compress(image_context)
        state_tokens = self.state_stem.compress(state_context)
        tokens = torch.cat([image_tokens, state_tokens], dim=1)
        tokens = tokens + self.trunk_posemb.to(tokens.dtype)
        if keep:
            block_outputs = self.trunk.forward_blocks(tokens)
            trunk_out = block_outputs[-1]
        else:
            trunk_out = self.trunk(tokens)
        # upstream postprocess_tokens: mean, or max(dim=1)[0] (amax: the same values, one ONNX ReduceMax)
        pooled = trunk_out.mean(dim=1) if c.token_postprocessing == "mean" else trunk_out.amax(dim=1)
        normalized_action = self.head(pooled)
        chunk = normalized_action.reshape(batch, c.action_horizon, c.action_dim)
        action = self.action_normalizer.unnormalize(chunk)
        if c.action_relative:
            reference = state if action_reference is None else action_reference
            action = action + reference[:, None, :].to(action.dtype)

        if stages is not None:
            stages["state_normalized"] = state_norm
            stages["stem_input_state"] = state_norm[:, None, :] + self.state_stem.posemb
            stages["stem_mlp_out_image"] = image_context.reshape(
                batch, c.num_views, c.image_tokens_per_view, -1
            )
            stages["stem_mlp_out_state"] = state_context
            stages["stem_tokens_image"] = image_tokens
            stages["stem_tokens_state"] = state_tokens
            stages["trunk_input"] = tokens
            for index, output in enumerate(block_outputs):
                stages[f"trunk_block{index}_out"] = output
            stages["trunk_output"] = trunk_out
            stages["pooled_feature"] = pooled
            stages["head_output_normalized_action"] = normalized_action
            stages["action_unnormalized"] = action
        return action

    def _check_inputs(self, image_features: torch.Tensor, state: torch.Tensor) -> None:
        c = self.config
        expected_image = (c.num_views, c.image_tokens_per_view, c.image_feature_dim)
        if image_features.dim() != 4 or tuple(image_features.shape[1:]) != expected_image:
            raise ValueError(
                f"image_features must be [B, {', '.join(map(str, expected_image))}], "
                f"got {list(image_features.shape)}"
            )
        if state.dim() != 2 or state.shape[1] != c.state_dim:
            raise ValueError(f"state must be [B, {c.state_dim}], got {list(state.shape)}")
        if image_features.shape[0] != state.shape[0]:
            raise ValueError(
                f"batch sizes differ: image_features {image_features.shape[0]}, "
                f"state {state.shape[0]}"
            )

    # -- bookkeeping ---------------------------------------------------------------------

    def trunk_checksum(self) -> str:
        """``trunk_sha256`` of this policy's trunk weights (proves which trunk is loaded)."""
        return trunk_sha256(self.trunk.state_dict())

    def trunk_num_params(self) -> int:
        """Number of trunk parameters (all of ``trunk.pth``)."""
        return self.trunk.num_params()

    def param_counts(self) -> dict[str, int]:
        """Parameters per part: trunk, stems, heads, encoder (0 if none) and total.

        The normaliser's buffers are not parameters and are not counted.
        """
        def count(module: nn.Module | None) -> int:
            return 0 if module is None else sum(p.numel() for p in module.parameters())

        counts = {
            "trunk": count(self.trunk),
            "stems": count(self.stems),
            "heads": count(self.heads),
            "encoder": count(self.encoder),
        }
        counts["total"] = sum(counts.values())
        return counts
