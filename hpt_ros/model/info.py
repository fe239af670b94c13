"""Human-readable summary of an HPT checkpoint (``hpt-ros model info PATH``).

PATH may be an upstream run folder (``config.yaml`` + ``model.pth``), an upstream
``trunk.pth`` (or a folder holding only one), or an hpt_ros checkpoint folder
(``hpt.yaml`` + ``model.safetensors``). The summary needs only tensor names and shapes.

``strict_load_report`` says whether the checkpoint would load: it runs the package's own
strict loader (the one the engines use), so its verdict and the loader's cannot drift
apart, and lists missing, unexpected and wrongly-shaped keys when it would not.
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
    load_checkpoint,
    load_official_model,
    load_official_trunk,
    read_official_trunk,
    read_state_dict,
)
from .config import trunk_size_name
from .errors import CheckpointError, ModelError
from .policy import trunk_sha256
from .trunk import Trunk

__all__ = ["describe", "strict_load_report"]


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
    lines.append(f"normaliser source: {(meta.get('normalizer') or {}).get('source', 'not recorded')}")
    extra = meta.get("extra") if isinstance(meta.get("extra"), dict) else {}
    lines += _spec_lines(meta.get("robot_spec"), extra.get("spec_hash"))
    return lines


def _spec_lines(fields: object, recorded_hash: object = None) -> list[str]:
    if not isinstance(fields, dict):
        known = f"spec hash {str(recorded_hash)[:16]} only" if recorded_hash else "not recorded"
        return [f"made for robot spec: {known} (joint order, views and action layout cannot be checked)"]
    action = fields.get("action") or {}
    views = ", ".join(f"{v.get('view')}={v.get('sensor')}" for v in fields.get("views") or [])
    joints = [j for s in fields.get("state") or [] for j in s.get("joints", [])]
    return [
        f"made for robot spec: {fields.get('robot')} (hash {str(fields.get('spec_hash'))[:16]})",
        f"  state joints: {', '.join(joints)}",
        f"  views: {views}",
        f"  action: {action.get('kind')} x {action.get('dim')} ({', '.join(action.get('joints') or [])})",
    ]


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


def _trunk_for(state: Mapping[str, torch.Tensor]) -> Trunk:
    """An empty trunk with the width and depth a trunk.pth's names and shapes suggest."""
    widths = [tuple(v.shape)[-1] for k, v in state.items() if k.endswith("attn.in_proj_weight") and v.ndim == 2]
    blocks = {k.split(".")[2] for k in state if k.startswith("trunk.blocks.")}
    depth = max((int(b) for b in blocks if b.isdigit()), default=-1) + 1
    if not widths or depth == 0:
        raise CheckpointError("<trunk>", "no trunk.blocks.<i>.attn.in_proj_weight: cannot tell the trunk's size")
    width = max(set(widths), key=widths.count)
    # heads change no shape; one head divides any width
    return Trunk(width, depth, 1)


def strict_load_report(path: str | Path) -> tuple[bool, list[str]]:
    """(would load, lines): run the strict loader on ``path`` and say what stops it, key by key."""
    path = Path(path)
    try:
        if path.is_dir() and (path / CHECKPOINT_CONFIG).is_file():
            load_checkpoint(path)
        elif path.is_dir() and (path / "model.pth").is_file():
            state = read_state_dict(path / "model.pth")
            domains = sorted({k.split(".")[1] for k in state if k.startswith("heads.")}) or [None]
            for domain in domains:
                load_official_model(path, domain)
        else:
            file, state = read_official_trunk(path)
            trunk = _trunk_for(state)
            load_official_trunk(file, trunk)
    except CheckpointError as exc:
        lines = [f"strict load: FAILS: {exc.file}: {exc.problem}"]
        lines += [f"  missing key: {k}" for k in exc.missing]
        lines += [f"  unexpected key: {k}" for k in exc.unexpected]
        lines += [f"  wrong shape: {k} file {tuple(f)}, model {tuple(m)}" for k, f, m in exc.mismatched]
        return False, lines
    except (ModelError, OSError, ValueError, RuntimeError) as exc:
        return False, [f"strict load: FAILS: {type(exc).__name__}: {exc}"]
    return True, ["strict load: OK (every key present, none unexpected, every shape fits)"]
