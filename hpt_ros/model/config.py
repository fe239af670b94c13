"""HPT model configuration: one dataclass for one embodiment (domain).

``HPTConfig`` holds every size the model layer needs. It can be built from a named
trunk size (``from_size``), from an upstream HPT ``config.yaml`` (``from_official_config``)
or from its own ``to_dict`` output (``from_dict``), which is what hpt_ros checkpoints store.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .errors import ConfigError

__all__ = ["TOKEN_POOLINGS", "TRUNK_SIZES", "HPTConfig", "trunk_size_name"]

TRUNK_SIZES: dict[str, tuple[int, int, int]] = {
    "small": (128, 16, 8),
    "base": (256, 16, 8),
    "large": (512, 16, 8),
    "xlarge": (768, 32, 16),
}
"""Published trunk sizes: name -> (embed_dim, num_blocks, num_heads)."""

TOKEN_POOLINGS = ("mean", "max")
"""Upstream ``network.token_postprocessing`` values reproduced here: how the trunk's
output tokens [B, L, D] become the head's feature [B, D] (mean or max over L)."""

# Domain names become module-dict keys ("<domain>_image"), which must not contain dots.
_DOMAIN_RE = re.compile(r"^[A-Za-z0-9_\-]+$")


def trunk_size_name(embed_dim: int, num_blocks: int, num_heads: int | None = None) -> str | None:
    """Name of the published trunk size with these dimensions, or None.

    ``num_heads=None`` matches on width and depth only (a trunk.pth does not record heads).
    """
    for name, (d, n, h) in TRUNK_SIZES.items():
        if d == embed_dim and n == num_blocks and (num_heads is None or h == num_heads):
            return name
    return None


@dataclass(kw_only=True)
class HPTConfig:
    """Sizes of one HPT policy (trunk + one domain's stems, head and normaliser).

    ``action_dim`` is per step; the head outputs ``action_horizon * action_dim`` numbers,
    horizon-major (index ``h * action_dim + a``). Dropout values only act in training.
    """

    embed_dim: int
    num_blocks: int
    num_heads: int
    mlp_ratio: float = 4.0
    domain: str = "robot"
    state_dim: int
    action_dim: int
    action_horizon: int = 8
    num_views: int = 2
    image_feature_dim: int = 512
    image_tokens_per_view: int = 49
    image_mlp_widths: tuple[int, ...] = (128,)
    state_mlp_widths: tuple[int, ...] = (128,)
    latent_tokens_image: int = 16
    latent_tokens_state: int = 16
    crossattn_heads: int = 8
    crossattn_dim_head: int = 64
    crossattn_dropout: float = 0.1
    head_widths: tuple[int, ...] = (256, 128)
    head_dropout: float = 0.1
    drop_path: float = 0.0
    normalize_state: bool = True
    image_size: int = 224
    token_postprocessing: str = "mean"  # one of TOKEN_POOLINGS
    #: standardise image features per token and channel with statistics fitted on the training data
    #: (not in upstream HPT; off for upstream models): with a random-weight encoder the common part
    #: of every frame's features drowns what differs between frames (where the objects are)
    image_feature_norm: bool = False
    #: the head predicts each chunk step as an offset from the input state (action = state + offset;
    #: not in upstream HPT): the output's range is a few ticks of motion instead of the whole workspace,
    #: and a policy cannot score by copying its input. Needs state and action to be the same joints.
    action_relative: bool = False

    def __post_init__(self) -> None:
        for name in ("image_mlp_widths", "state_mlp_widths", "head_widths"):
            setattr(self, name, tuple(int(w) for w in getattr(self, name)))
        positive = (
            "embed_dim", "num_blocks", "num_heads", "state_dim", "action_dim", "action_horizon",
            "num_views", "image_feature_dim", "image_tokens_per_view", "latent_tokens_image",
            "latent_tokens_state", "crossattn_heads", "crossattn_dim_head", "image_size",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"HPTConfig.{name} must be a positive int, got {value!r}")
        if self.embed_dim % self.num_heads:
            raise ConfigError(
                f"embed_dim {self.embed_dim} is not divisible by num_heads {self.num_heads}"
            )
        if not self.image_mlp_widths or not self.state_mlp_widths or not self.head_widths:
            raise ConfigError("stem and head MLP widths must not be empty")
        if not isinstance(self.domain, str) or not _DOMAIN_RE.match(self.domain):
            raise ConfigError(f"domain must match {_DOMAIN_RE.pattern}, got {self.domain!r}")
        if self.token_postprocessing not in TOKEN_POOLINGS:
            raise ConfigError(f"HPTConfig.token_postprocessing must be one of {TOKEN_POOLINGS}, "
                              f"got {self.token_postprocessing!r}")
        if self.action_relative and self.state_dim != self.action_dim:
            raise ConfigError(f"HPTConfig.action_relative needs state_dim == action_dim, got "
                              f"{self.state_dim} and {self.action_dim}")
        for name in ("crossattn_dropout", "head_dropout", "drop_path"):
            if not 0.0 <= float(getattr(self, name)) < 1.0:
                raise ConfigError(f"HPTConfig.{name} must be in [0, 1), got {getattr(self, name)}")

    @property
    def action_output_dim(self) -> int:
        """Numbers the head outputs: horizon * per-step action dim."""
        return self.action_horizon * self.action_dim

    @property
    def num_trunk_tokens(self) -> int:
        """Tokens entering the trunk: image latents then state latents."""
        return self.latent_tokens_image + self.latent_tokens_state

    @property
    def size_name(self) -> str | None:
        """'small' / 'base' / 'large' / 'xlarge' when the trunk matches one, else None."""
        return trunk_size_name(self.embed_dim, self.num_blocks, self.num_heads)

    def replace(self, **changes: Any) -> HPTConfig:
        """A copy with some fields changed (validated again)."""
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict of builtins (tuples become lists) that YAML can store."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> HPTConfig:
        """Inverse of ``to_dict``; unknown keys are an error rather than silently dropped."""
        names = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(data) - names)
        if unknown:
            raise ConfigError(f"unknown HPTConfig keys: {', '.join(unknown)}")
        try:
            return cls(**dict(data))
        except TypeError as exc:  # missing required fields
            raise ConfigError(f"invalid HPTConfig: {exc}") from None

    @classmethod
    def from_size(cls, name: str, **overrides: Any) -> HPTConfig:
        """Config with a published trunk size; ``state_dim`` and ``action_dim`` must be given."""
        try:
            embed_dim, num_blocks, num_heads = TRUNK_SIZES[name]
        except KeyError:
            raise ConfigError(
                f"unknown trunk size {name!r}; choose one of {', '.join(TRUNK_SIZES)}"
            ) from None
        values: dict[str, Any] = {
            "embed_dim": embed_dim,
            "num_blocks": num_blocks,
            "num_heads": num_heads,
        }
        values.update(overrides)
        return cls.from_dict(values)

    @classmethod
    def from_official_config(
        cls,
        cfg: Mapping[str, Any],
        *,
        domain: str | None = None,
        num_views: int = 2,
    ) -> HPTConfig:
        """Read an upstream HPT run's composed ``config.yaml`` (already parsed to a dict).

        The upstream config does not record the number of camera views reliably (its
        ``stem.image.num_of_copy`` counts observation steps, see the fixtures README), so
        ``num_views`` is given here. Options this implementation does not reproduce raise
        ``ConfigError`` instead of giving silently different outputs.
        """
        try:
            network = cfg["network"]
            stem = cfg["stem"]
            head = cfg["head"]
            dataset = cfg.get("dataset", {}) or {}
            action_horizon = int(dataset.get("action_horizon", 8))
            output_dim = int(head["output_dim"])
            latents = stem.get("crossattn_latent", {}) or {}
            image = stem["image"]
            state = stem["state"]
        except (KeyError, TypeError) as exc:
            raise ConfigError(f"not an HPT config.yaml layout: missing {exc}") from None

        pooling = network.get("token_postprocessing", "mean")
        _require(pooling in TOKEN_POOLINGS,
                 f"network.token_postprocessing {pooling!r} (supported: {', '.join(TOKEN_POOLINGS)})")  # fmt: skip
        _require(not network.get("no_trunk", False), "network.no_trunk is not supported")
        _require(int(network.get("observation_horizon", 1)) == 1,
                 "only network.observation_horizon 1 is supported")  # fmt: skip
        _require(stem.get("cross_attention", True), "stem.cross_attention must be true")
        _require(int(image.get("num_of_copy", 1)) == 1,
                 "stem.image.num_of_copy > 1 (tied per-step MLP copies)")  # fmt: skip
        _require(head.get("tanh_end", True), "head.tanh_end must be true")
        _require(head.get("ln", True), "head.ln must be true")
        if output_dim % action_horizon:
            raise ConfigError(
                f"head.output_dim {output_dim} is not a multiple of action_horizon {action_horizon}"
            )
        if domain is None:
            domains = str(cfg.get("domains", "robot")).split(",")
            domain = domains[0].strip() if len(domains) == 1 else None
            if domain is None:
                raise ConfigError(f"config lists several domains {domains}; pass domain=")
        return cls(
            embed_dim=int(network["embed_dim"]),
            num_blocks=int(network["num_blocks"]),
            num_heads=int(network["num_heads"]),
            domain=domain,
            state_dim=int(state["input_dim"]),
            action_dim=output_dim // action_horizon,
            action_horizon=action_horizon,
            num_views=num_views,
            image_feature_dim=int(image.get("input_dim", 512)),
            image_mlp_widths=tuple(image.get("widths", (128,))),
            state_mlp_widths=tuple(state.get("widths", (128,))),
            latent_tokens_image=int(latents.get("image", 16)),
            latent_tokens_state=int(latents.get("state", 16)),
            crossattn_heads=int(stem.get("crossattn_heads", 8)),
            crossattn_dim_head=int(stem.get("crossattn_dim_head", 64)),
            crossattn_dropout=float(stem.get("crossattn_modality_dropout", 0.1)),
            head_widths=tuple(head.get("widths", (256, 128))),
            head_dropout=0.1 if head.get("dropout", True) else 0.0,
            drop_path=float(network.get("drop_path", 0.0)),
            normalize_state=bool(stem.get("normalize_state", True)),
            token_postprocessing=str(pooling),
        )


def _require(condition: Any, message: str) -> None:
    if not condition:
        raise ConfigError(f"unsupported upstream HPT option: {message}")
