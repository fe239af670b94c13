"""Human-readable summary of an HPT checkpoint (``hpt-ros model info PATH``).

PATH may be an upstream run folder (``config.yaml`` + ``model.pth``), an upstream
``trunk.pth`` (or a folder holding only one), or an hpt_ros checkpoint folder
(``hpt.yaml`` + ``model.safetensors``). Only tensor names and shapes are needed, so
nothing is built except for the trunk checksum.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from pathlib import Path

import torch
import yaml

from .checkpoint import (
    CHECKPOINT_CONFIG,
    CHECKPOINT_WEIGHTS,
    read_official_trunk,
    read_state_dict,
)
from .config import trunk_size_name
from .errors import CheckpointError
from .policy import trunk_sha256

__all__ = ["describe"]


def _trunk_lines(trunk: Mapping[str, torch.Tensor], heads: int | None) -> list[str]:
    blocks = {int(k.split(".")[2]) for k in trunk if k.startswith("trunk.blocks.")}
    widths = {tuple(v.shape)[-1] for k, v in trunk.items() if k.endswith("attn.in_proj_weight")}
    if not blocks or len(widths) != 1:
        return ["trunk: none found"]
    width = widths.pop()
    size = trunk_size_name(width, len(blocks), heads) or "custom"
    heads_text = str(heads) if heads else "not stored in trunk.pth"
    return [
        f"trunk: {size} (embed_dim {width}, {len(blocks)} blocks, heads {heads_text})",
        f"trunk params: {sum(v.numel() for v in trunk.values()):,} in {len(trunk)} tensors",
        f"trunk sha256: {trunk_sha256(trunk)}",
    ]


def _part_counts(state: Mapping[str, torch.Tensor]) -> list[str]:
    # Group by the first one or two name parts: stems.<x>, heads.<x>, normalizer.<x>, ...
    counts: dict[str, int] = defaultdict(int)
    for key, value in state.items():
        parts = key.split(".")
        if parts[0] == "trunk":
            continue
        group = ".".join(parts[:2]) if parts[0] in {"stems", "heads", "normalizer"} else parts[0]
        counts[group] += value.numel()
    return [f"  {group}: {count:,}" for group, count in sorted(counts.items())]


def _describe_official_run(folder: Path) -> list[str]:
    config_file = folder / "config.yaml"
    config = yaml.safe_load(config_file.read_text()) if config_file.is_file() else {}
    network = (config or {}).get("network", {}) or {}
    state = read_state_dict(folder / "model.pth")
    trunk = {k.removeprefix("trunk."): v for k, v in state.items() if k.startswith("trunk.")}
    domains = sorted({k.split(".")[1] for k in state if k.startswith("heads.")})
    lines = [f"{folder}: upstream HPT run folder (config.yaml + model.pth)"]
    lines.append(f"domains: {', '.join(domains) or 'none'}")
    lines += _trunk_lines(trunk, network.get("num_heads"))
    lines.append("other parameters and buffers (numbers):")
    lines += _part_counts(state)
    if (folder / "trunk.pth").is_file():
        _, trunk_file = read_official_trunk(folder / "trunk.pth")
        same = trunk_sha256(trunk_file) == trunk_sha256(trunk) if trunk else False
        lines.append(f"trunk.pth present: {'same weights' if same else 'DIFFERENT weights'}")
    return lines


def _describe_own(folder: Path) -> list[str]:
    from safetensors import safe_open

    meta = yaml.safe_load((folder / CHECKPOINT_CONFIG).read_text()) or {}
    config = meta.get("config", {})
    with safe_open(str(folder / CHECKPOINT_WEIGHTS), framework="pt") as weights:
        state = {k: weights.get_tensor(k) for k in weights.keys()}  # noqa: SIM118
    trunk = {k.removeprefix("trunk."): v for k, v in state.items() if k.startswith("trunk.")}
    lines = [f"{folder}: hpt_ros checkpoint ({meta.get('format')})"]
    lines.append(
        f"domain: {config.get('domain')}, state_dim {config.get('state_dim')}, "
        f"action {config.get('action_horizon')} x {config.get('action_dim')}, "
        f"views {config.get('num_views')}"
    )
    lines += _trunk_lines(trunk, config.get("num_heads"))
    lines.append("other parameters and buffers (numbers):")
    lines += _part_counts(state)
    encoder = meta.get("encoder")
    lines.append(
        "encoder: none" if not encoder else
        f"encoder: {encoder.get('type')} ({encoder.get('weights_source')}, "
        f"bn_folded {encoder.get('bn_folded')}, image_size {encoder.get('image_size')})"
    )  # fmt: skip
    return lines


def describe(path: str | Path) -> str:
    """Sizes, parameter counts per part and trunk sha256 of the checkpoint at ``path``."""
    path = Path(path)
    if path.is_dir() and (path / CHECKPOINT_CONFIG).is_file():
        lines = _describe_own(path)
    elif path.is_dir() and (path / "model.pth").is_file():
        lines = _describe_official_run(path)
    elif path.is_file() or (path.is_dir() and (path / "trunk.pth").is_file()):
        file, trunk = read_official_trunk(path)
        lines = [f"{file}: upstream HPT trunk ({file.stat().st_size:,} bytes)"]
        lines += _trunk_lines(trunk, None)
    else:
        raise CheckpointError(
            path, "not an HPT checkpoint (expected hpt.yaml, model.pth or trunk.pth)"
        )
    return "\n".join(lines)
