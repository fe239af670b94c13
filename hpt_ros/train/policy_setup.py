"""The policy a run trains: built for the spec, its trunk loaded and proven, its normalisers fitted.

``build_policy`` makes the stems, head and frozen ResNet-18 for the robot spec and either
loads a pretrained trunk (``load_pretrained_trunk``: strict, checksum-verified, with the
file's sha256 as ``TrunkProvenance``) or says loudly that the trunk starts from scratch.
``fit_normalizer`` and ``fit_image_feature_norm`` fit what the model normalises on the
training split.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hpt_ros.engine.onnx_file import file_sha256

from .config import TrainConfig
from .errors import TrainError

__all__ = ["TrunkProvenance", "build_policy", "fit_image_feature_norm", "fit_normalizer", "load_pretrained_trunk",
           "trunk_dims"]

logger = logging.getLogger("hpt_ros.train")


@dataclass(frozen=True)
class TrunkProvenance:
    """Where the trunk came from, with the proof that it was loaded.

    ``file_sha256``: sha256 of the trunk file's bytes; ``sha256``: ``trunk_sha256`` of its
    tensors, which the policy's ``trunk_checksum()`` equalled right after loading.
    """

    source: str
    file: str
    file_sha256: str
    sha256: str
    num_params: int

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "file": self.file, "file_sha256": self.file_sha256, "sha256": self.sha256,
                "num_params": self.num_params}


def trunk_dims(source: str, size: str | None, num_heads: int | None) -> tuple[Path, int, int, int]:
    """(trunk file, embed_dim, num_blocks, num_heads) of a pretrained source."""
    from hpt_ros.engine.factory import TINY_SIZE
    from hpt_ros.model import TRUNK_SIZES, read_official_trunk, resolve_pretrained, trunk_size_name

    path = resolve_pretrained(source)  # PretrainedNotFoundError (a FileNotFoundError) with a hint
    file, state = read_official_trunk(path)
    widths = {tuple(v.shape)[-1] for k, v in state.items() if k.endswith("attn.in_proj_weight")}
    blocks = {int(k.split(".")[2]) for k in state if k.startswith("trunk.blocks.")}
    if len(widths) != 1 or not blocks:
        raise TrainError(f"{file}: not an HPT trunk (no trunk.blocks.*.attn.in_proj_weight)")
    width, depth = widths.pop(), max(blocks) + 1
    heads = num_heads
    config_file = (path if path.is_dir() else path.parent) / "config.yaml"
    if heads is None and config_file.is_file():
        try:
            network = (yaml.safe_load(config_file.read_text()) or {}).get("network", {}) or {}
            if int(network.get("embed_dim", -1)) == width and int(network.get("num_blocks", -1)) == depth:
                heads = int(network["num_heads"])
        except (yaml.YAMLError, KeyError, TypeError, ValueError, AttributeError):
            heads = None
    if heads is None and size is not None:
        dims = TINY_SIZE if size == "tiny" else TRUNK_SIZES.get(size)
        if dims is not None and dims[:2] == (width, depth):
            heads = dims[2]
    if heads is None:
        name = trunk_size_name(width, depth)
        if name is not None:
            heads = TRUNK_SIZES[name][2]
        elif (width, depth) == TINY_SIZE[:2]:
            heads = TINY_SIZE[2]
    if heads is None:
        raise TrainError(f"{file}: trunk of width {width} and {depth} blocks is no published size and trunk.pth "
                         "does not record its heads: pass --num-heads")
    if size is not None:
        dims = TINY_SIZE if size == "tiny" else TRUNK_SIZES.get(size)
        if dims is None:
            raise TrainError(f"unknown size {size!r}")
        if dims[:2] != (width, depth):
            raise TrainError(f"--size {size} is embed_dim {dims[0]} x {dims[1]} blocks, but the trunk {file} is "
                             f"{width} x {depth}; drop --size or pick the matching trunk")
    return file, width, depth, heads


def load_pretrained_trunk(source: str, policy: Any) -> TrunkProvenance:
    """Load a pretrained trunk (hub id, folder with trunk.pth, or a file) into ``policy`` and prove it.

    ``load_official_trunk`` loads strictly and checks the policy's trunk checksum against
    the file's tensors; this also records the sha256 of the file's bytes.
    """
    from hpt_ros.model import load_official_trunk, resolve_pretrained

    path = resolve_pretrained(source)
    report = load_official_trunk(path, policy)
    if policy.trunk_checksum() != report.sha256:  # load_official_trunk checks it too; keep it visible here
        raise TrainError(f"{report.file}: trunk checksum after loading differs from the file's")
    provenance = TrunkProvenance(str(source), str(report.file), file_sha256(report.file), report.sha256,
                                 report.num_params)
    logger.info("pretrained trunk LOADED from %s: %d tensors, %d parameters; file sha256 %s; trunk weights sha256 %s "
                "(the policy's trunk_checksum() equals it)", report.file, report.num_keys, report.num_params,
                provenance.file_sha256, provenance.sha256)
    return provenance


def build_policy(spec: Any, config: TrainConfig) -> tuple[Any, TrunkProvenance | None]:
    from hpt_ros.engine.factory import TINY_SIZE, config_for_spec
    from hpt_ros.model import HPTPolicy, ImageEncoder

    if config.trunk is not None:
        _, width, depth, heads = trunk_dims(config.trunk, config.size, config.num_heads)
    else:
        size = config.size or spec.model.size or "small"
        base = config_for_spec(spec, size)
        width, depth, heads = base.embed_dim, base.num_blocks, config.num_heads or base.num_heads
        if size == "tiny":
            width, depth, heads = TINY_SIZE[0], TINY_SIZE[1], config.num_heads or TINY_SIZE[2]
    hpt_config = config_for_spec(spec, "small").replace(embed_dim=width, num_blocks=depth, num_heads=heads,
                                                       drop_path=float(config.drop_path),
                                                       image_feature_norm=bool(config.image_feature_norm),
                                                       action_relative=bool(config.action_relative))
    if config.action_relative and list(spec.state_joints) != list(spec.action.joints):
        raise TrainError(f"--relative-actions needs the state joints and the action joints to be the same, in the "
                         f"same order; spec {spec.source} has state {list(spec.state_joints)} and action "
                         f"{list(spec.action.joints)}")
    if config.vision_weights:
        encoder = ImageEncoder(config.vision_weights, image_size=hpt_config.image_size)
    elif config.random_vision:
        # seeded: a checkpoint then stores the seed instead of the encoder's weights
        encoder = ImageEncoder(random_init=True, seed=config.seed, image_size=hpt_config.image_size)
    else:
        raise TrainError("the vision encoder needs ResNet-18 ImageNet weights (--vision-weights FILE, a torchvision "
                         "or timm resnet18 .pth/.safetensors); pass --random-vision to train with a random encoder "
                         "on purpose (tests, offline demos)")
    if config.encoder_round_dtype:
        # Features are then computed from exactly the weights a float16/bfloat16 copy stores.
        encoder.round_weights(config.encoder_round_dtype)
    policy = HPTPolicy(hpt_config, encoder=encoder)
    provenance = None
    if config.trunk is not None:
        provenance = load_pretrained_trunk(config.trunk, policy)
    else:
        logger.warning("=" * 78)
        logger.warning("NO PRETRAINED TRUNK (--trunk not given): the trunk (%s, embed_dim %d x %d blocks) is "
                       "RANDOMLY INITIALISED and trained from scratch on these demonstrations only.",
                       hpt_config.size_name or ("tiny" if (width, depth, heads) == TINY_SIZE else "custom"), width,
                       depth)
        logger.warning("=" * 78)
    return policy, provenance


def fit_normalizer(policy: Any, train: Any) -> None:
    from hpt_ros.model import LimitsNormalizer

    states = train.states.astype(np.float64)
    if policy.config.action_relative:
        # every chunk step's offset from the state it was predicted from: what the head outputs
        actions = (train.chunks.astype(np.float64) - states[:, None, :]).reshape(-1, states.shape[1])
    else:
        actions = train.all_actions.astype(np.float64)
    for target, data in ((policy.state_normalizer, states), (policy.action_normalizer, actions)):
        fitted = LimitsNormalizer.fit_limits(data)
        stats = fitted.input_stats
        target.set_limits(stats.min.numpy(), stats.max.numpy(), mean=stats.mean.numpy(), std=stats.std.numpy())
    policy.normalizer_source = f"training data (min/max of {len(states)} training samples)"


def fit_image_feature_norm(policy: Any, train: Any, chunk: int = 512) -> None:
    """Per-view, per-token, per-channel mean and std of the training split's image features."""
    views = train.frame_index.shape[1]
    tokens, dim = train.features.shape[1:]
    mean = np.zeros((views, tokens, dim))
    std = np.ones((views, tokens, dim))
    for v in range(views):
        rows = np.unique(train.frame_index[:, v])
        total, total_sq = np.zeros((tokens, dim)), np.zeros((tokens, dim))
        for start in range(0, len(rows), chunk):  # float64 sums, a chunk of frames at a time
            block = train.features[rows[start:start + chunk]].astype(np.float64)
            total += block.sum(0)
            total_sq += (block * block).sum(0)
        mean[v] = total / max(len(rows), 1)
        std[v] = np.sqrt(np.maximum(total_sq / max(len(rows), 1) - mean[v] ** 2, 0.0))
    policy.set_image_feature_stats(mean.reshape(views * tokens, dim), std.reshape(views * tokens, dim))
