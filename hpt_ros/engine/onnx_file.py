"""The ONNX file contract: what ``export_onnx`` writes and ``OnnxEngine`` reads.

One ``.onnx`` file with inputs ``images`` and ``state`` and output ``actions``, and its
sidecar YAML (``<file>.onnx.yaml``, format ``SIDECAR_FORMAT``) that records the sizes, the
spec fields and the file's sha256.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from .base import EngineError

__all__ = ["INPUT_NAMES", "OUTPUT_NAMES", "SIDECAR_FORMAT", "file_sha256", "read_sidecar", "sidecar_path"]

SIDECAR_FORMAT = "hpt_ros.onnx/1"
INPUT_NAMES = ("images", "state")
OUTPUT_NAMES = ("actions",)


def sidecar_path(onnx_file: str | Path) -> Path:
    """``policy.onnx`` -> ``policy.onnx.yaml`` (never clobbers a robot spec of the same stem)."""
    onnx_file = Path(onnx_file)
    return onnx_file.with_name(onnx_file.name + ".yaml")


def file_sha256(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def read_sidecar(onnx_file: str | Path, *, check_hash: bool = True) -> dict[str, Any]:
    """The sidecar YAML of ``onnx_file``, checked (format, sizes, and the file's sha256)."""
    import yaml

    onnx_file = Path(onnx_file)
    side = sidecar_path(onnx_file)
    if not onnx_file.is_file():
        raise EngineError(f"{onnx_file}: no such ONNX file")
    if not side.is_file():
        raise EngineError(f"{onnx_file}: its sidecar {side.name} is missing (export with "
                          "`hpt-ros export-onnx`, which writes both)")  # fmt: skip
    try:
        meta = yaml.safe_load(side.read_text())
    except yaml.YAMLError as exc:
        raise EngineError(f"{side}: invalid YAML: {exc}") from exc
    if not isinstance(meta, dict) or meta.get("format") != SIDECAR_FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise EngineError(f"{side}: format {found!r}, expected {SIDECAR_FORMAT!r}")
    sizes = meta.get("sizes")
    needed = ("state_dim", "action_dim", "action_horizon", "num_views")
    if not isinstance(sizes, dict) or any(not isinstance(sizes.get(k), int) for k in needed):
        raise EngineError(f"{side}: 'sizes' must give {', '.join(needed)}")
    if check_hash and meta.get("onnx_sha256") and file_sha256(onnx_file) != meta["onnx_sha256"]:
        raise EngineError(f"{side}: was written for another version of {onnx_file.name} "
                          "(sha256 differs); export again")  # fmt: skip
    return meta
