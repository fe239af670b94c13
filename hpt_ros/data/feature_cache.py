"""The on-disk feature cache: one folder per episode, named by a hash of everything the
extraction reads (see :mod:`hpt_ros.data.dataset`), written atomically."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpt_ros.spec import RobotSpec

from .actions import ActionSource
from .episode_selection import bag_fingerprint
from .episodes import EpisodeInfo

__all__ = ["DATASET_FORMAT", "EpisodeData", "cache_folder", "default_cache_dir", "episode_cache_key", "load_cached",
           "save_cached"]

logger = logging.getLogger("hpt_ros.data")

DATASET_FORMAT = "hpt_ros.dataset/1"


def default_cache_dir() -> Path:
    """``$HPT_ROS_CACHE`` or ``$XDG_CACHE_HOME/hpt_ros/features`` (``~/.cache/hpt_ros/features``)."""
    if os.environ.get("HPT_ROS_CACHE"):
        return Path(os.environ["HPT_ROS_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "hpt_ros" / "features"


@dataclass
class EpisodeData:
    """One episode's ticks and image features (what the cache stores).

    ``times_ns`` [N] tick times; ``valid`` [N] ticks that are samples; ``states`` [N, S]
    (NaN where not valid); ``actions`` [N, A] per tick (filled, see ``fill_actions``);
    ``frame_index`` [N, V] row of ``features`` per view (-1 where not valid);
    ``features`` [U, 49, 512] distinct frames (float16 or float32, maybe memory-mapped).
    """

    name: str
    path: Path
    times_ns: np.ndarray
    valid: np.ndarray
    states: np.ndarray
    actions: np.ndarray
    frame_index: np.ndarray
    features: np.ndarray
    stats: dict[str, int] = field(default_factory=dict)
    info: EpisodeInfo | None = None
    cached: bool = False
    seconds: float = 0.0

    @property
    def num_samples(self) -> int:
        return int(self.valid.sum())


def _spec_key(spec: RobotSpec) -> dict[str, Any]:
    return {
        "sensors": [[s.name, s.topic, s.type, s.stem, s.max_age, s.view, s.field, list(s.joints), s.required]
                    for s in spec.sensors],
        "image_size": spec.image_size,
        "action": [spec.action.kind, list(spec.action.joints), spec.action.command.topic, spec.action.command.type,
                   None if spec.action.gripper is None else [spec.action.gripper.joint, spec.action.gripper.topic,
                                                             spec.action.gripper.type]],
    }


def episode_cache_key(info: EpisodeInfo, spec: RobotSpec, rate_hz: float, source: ActionSource,
                      extractor_key: dict[str, Any], feature_dtype: str) -> str:
    """The sha256 that names an episode's cache entry (rules in :mod:`hpt_ros.data.dataset`)."""
    doc = {"format": DATASET_FORMAT, "bag": bag_fingerprint(info), "spec": _spec_key(spec), "rate_hz": rate_hz,
           "action_source": source.describe(), "features": extractor_key, "feature_dtype": feature_dtype}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


_ARRAYS = ("times_ns", "valid", "states", "actions", "frame_index")


def cache_folder(cache_dir: Path, info: EpisodeInfo, key: str) -> Path:
    return cache_dir / f"{info.path.name}-{key[:20]}"


def load_cached(folder: Path, info: EpisodeInfo, name: str) -> EpisodeData | None:
    import yaml

    meta_file = folder / "meta.yaml"
    if not meta_file.is_file():
        return None
    try:
        meta = yaml.safe_load(meta_file.read_text())
        arrays = {k: np.load(folder / f"{k}.npy", allow_pickle=False) for k in _ARRAYS}
        features = np.load(folder / "features.npy", mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        logger.warning("feature cache %s unreadable (%s): rebuilding it", folder, exc)
        return None
    return EpisodeData(name=name, path=info.path, features=features, stats=dict(meta.get("stats", {})),
                       info=info, cached=True, **arrays)


def save_cached(folder: Path, data: EpisodeData, meta: dict[str, Any]) -> None:
    import yaml

    tmp = folder.with_name(folder.name + f".tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for k in _ARRAYS:
        np.save(tmp / f"{k}.npy", getattr(data, k), allow_pickle=False)
    np.save(tmp / "features.npy", data.features, allow_pickle=False)
    (tmp / "meta.yaml").write_text(yaml.safe_dump(meta, sort_keys=False))  # written last: marks it complete
    shutil.rmtree(folder, ignore_errors=True)
    os.replace(tmp, folder)
