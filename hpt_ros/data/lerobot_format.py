"""The LeRobotDataset v3.0 layout, written and read with pyarrow and PyAV (no ``lerobot`` package needed).

A v3.0 dataset, as LeRobot's ``LeRobotDataset`` reads it::

    meta/info.json                     codebase_version "v3.0", fps, robot_type, features, splits,
                                       data_path / video_path templates, chunks_size, totals
    meta/stats.json                    per feature: min, max, mean, std, count (images: per channel, in [0, 1])
    meta/tasks.parquet                 task_index per task (the task string is the pandas index "task")
    meta/episodes/chunk-000/file-000.parquet
                                       one row per episode: episode_index, tasks, length,
                                       data/chunk_index, data/file_index, dataset_from_index, dataset_to_index,
                                       videos/<key>/{chunk_index, file_index, from_timestamp, to_timestamp},
                                       stats/<feature>/{min, max, mean, std, count}
    data/chunk-000/file-000.parquet    one row per frame: observation.state, action, timestamp,
                                       frame_index, episode_index, index, task_index
    videos/<key>/chunk-000/file-000.mp4
                                       the frames of one camera, episodes one after the other
                                       (an episode starts at its from_timestamp)

Files roll over to ``file-001`` ... once they pass ``data_files_size_in_mb`` /
``video_files_size_in_mb``; ``chunks_size`` files make a chunk.

Features of a robot spec: ``observation.state`` (``spec.state_joints``), ``action``
(``spec.action`` layout) and ``observation.images.<sensor name>`` per camera, in view order.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterator, Sequence
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from hpt_ros.spec import RobotSpec

__all__ = [
    "ACTION_KEY",
    "CODEBASE_VERSION",
    "DATA_PATH",
    "EPISODES_PATH",
    "INFO_PATH",
    "STATE_KEY",
    "STATS_PATH",
    "TASKS_PATH",
    "VIDEO_PATH",
    "LeRobotFormatError",
    "VideoFrames",
    "VideoWriter",
    "action_names",
    "aggregate_stats",
    "array_stats",
    "choose_encoder",
    "image_key",
    "image_stats",
    "read_info",
]

CODEBASE_VERSION = "v3.0"
INFO_PATH = "meta/info.json"
STATS_PATH = "meta/stats.json"
TASKS_PATH = "meta/tasks.parquet"
_CHUNK_FILE = "chunk-{chunk_index:03d}/file-{file_index:03d}"
EPISODES_PATH = "meta/episodes/" + _CHUNK_FILE + ".parquet"
DATA_PATH = "data/" + _CHUNK_FILE + ".parquet"
VIDEO_PATH = "videos/{video_key}/" + _CHUNK_FILE + ".mp4"
CHUNKS_SIZE = 1000
DATA_FILE_SIZE_MB = 100
VIDEO_FILE_SIZE_MB = 200

STATE_KEY = "observation.state"
ACTION_KEY = "action"
INDEX_FEATURES = {
    "timestamp": {"dtype": "float32", "shape": [1], "names": None},
    "frame_index": {"dtype": "int64", "shape": [1], "names": None},
    "episode_index": {"dtype": "int64", "shape": [1], "names": None},
    "index": {"dtype": "int64", "shape": [1], "names": None},
    "task_index": {"dtype": "int64", "shape": [1], "names": None},
}

# PyAV encoder -> the codec name LeRobot writes in info.json; first available wins
ENCODERS = (("libsvtav1", "av1"), ("libaom-av1", "av1"), ("libx264", "h264"), ("libopenh264", "h264"))


class LeRobotFormatError(ValueError):
    """A LeRobot dataset that cannot be read or written: names the file and, where one is involved, the key."""

    def __init__(self, path: str | Path, detail: str, *, key: str | None = None):
        self.path = str(path)
        self.key = key
        where = f"{self.path}: {key!r}" if key else self.path
        super().__init__(f"{where}: {detail}")


def image_key(sensor_name: str) -> str:
    return f"observation.images.{sensor_name}"


def action_names(spec: RobotSpec) -> list[str]:
    """Names of the action vector's entries (joints, or end-effector axes then the gripper joint)."""
    action = spec.action
    if action.kind == "joint_position":
        return list(action.joints)
    axes = ["x", "y", "z", "roll", "pitch", "yaw"] if action.kind == "ee_pose" else ["vx", "vy", "vz", "wx", "wy",
                                                                                     "wz"]  # fmt: skip
    return axes + ([action.gripper.joint] if action.gripper else [])


def spec_features(spec: RobotSpec, frame_sizes: dict[str, tuple[int, int]], codec: str, fps: float) -> dict[str, Any]:
    """info.json ``features`` of ``spec``; ``frame_sizes``: (height, width) per camera sensor."""
    features: dict[str, Any] = {}
    for sensor in sorted(spec.image_sensors, key=lambda s: s.view):
        height, width = frame_sizes[sensor.name]
        features[image_key(sensor.name)] = {
            "dtype": "video",
            "shape": [height, width, 3],
            "names": ["height", "width", "channels"],
            "info": {"video.height": height, "video.width": width, "video.codec": codec,
                     "video.pix_fmt": "yuv420p", "video.is_depth_map": False, "video.fps": fps,
                     "video.channels": 3, "has_audio": False},
        }  # fmt: skip
    features[STATE_KEY] = {"dtype": "float32", "shape": [spec.state_dim], "names": list(spec.state_joints)}
    features[ACTION_KEY] = {"dtype": "float32", "shape": [spec.action.dim], "names": action_names(spec)}
    features.update(json.loads(json.dumps(INDEX_FEATURES)))
    return features


def hf_features_metadata(features: dict[str, Any], keys: Sequence[str]) -> bytes:
    """The ``huggingface`` parquet schema metadata (``datasets`` feature types) of the columns ``keys``."""
    out: dict[str, Any] = {}
    for key in keys:
        ft = features[key]
        value = {"dtype": ft["dtype"], "_type": "Value"}
        out[key] = value if ft["shape"] == [1] else {"feature": value, "length": ft["shape"][0], "_type": "Sequence"}
    return json.dumps({"info": {"features": out}}).encode()


def read_info(root: Path) -> dict[str, Any]:
    """meta/info.json of a v3 dataset, checked for the keys the importer reads."""
    path = root / INFO_PATH
    if not path.is_file():
        raise LeRobotFormatError(path, "no such file: not a LeRobot dataset folder")
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise LeRobotFormatError(path, f"unreadable: {exc}") from None
    for key in ("codebase_version", "fps", "features", "data_path"):
        if key not in info:
            raise LeRobotFormatError(path, "missing", key=key)
    version = str(info["codebase_version"])
    if not version.startswith("v3"):
        raise LeRobotFormatError(path, f"is {version}; only v3.x datasets are read (convert older ones with "
                                 "LeRobot's conversion script)", key="codebase_version")  # fmt: skip
    if not (isinstance(info["fps"], (int, float)) and info["fps"] > 0):
        raise LeRobotFormatError(path, f"must be a positive number, got {info['fps']!r}", key="fps")
    return info


# -- statistics ----------------------------------------------------------------------------------

def array_stats(values: np.ndarray) -> dict[str, np.ndarray]:
    """min, max, mean, std (population), count of ``values`` [N, ...] over axis 0."""
    values = np.asarray(values, dtype=np.float64)
    return {"min": values.min(axis=0), "max": values.max(axis=0), "mean": values.mean(axis=0),
            "std": values.std(axis=0), "count": np.array([values.shape[0]])}  # fmt: skip


def image_stats(sums: np.ndarray, squares: np.ndarray, low: np.ndarray, high: np.ndarray,
                pixels: int, frames: int) -> dict[str, np.ndarray]:  # fmt: skip
    """Per-channel stats of frames in [0, 1], shaped [3, 1, 1] as LeRobot keeps them."""
    mean = sums / pixels
    std = np.sqrt(np.maximum(squares / pixels - mean**2, 0.0))
    shape = (3, 1, 1)
    return {"min": (low / 255.0).reshape(shape), "max": (high / 255.0).reshape(shape),
            "mean": (mean / 255.0).reshape(shape), "std": (std / 255.0).reshape(shape),
            "count": np.array([frames])}  # fmt: skip


def aggregate_stats(per_episode: Sequence[dict[str, dict[str, np.ndarray]]]) -> dict[str, dict[str, np.ndarray]]:
    """Dataset stats from episode stats: count-weighted mean, pooled variance (as LeRobot aggregates them)."""
    out: dict[str, dict[str, np.ndarray]] = {}
    for key in per_episode[0]:
        parts = [stats[key] for stats in per_episode]
        counts = np.array([float(p["count"][0]) for p in parts])
        weights = counts / counts.sum()
        means = np.stack([p["mean"] for p in parts])
        mean = np.tensordot(weights, means, axes=1)
        second = np.tensordot(weights, np.stack([p["std"] ** 2 + p["mean"] ** 2 for p in parts]), axes=1)
        out[key] = {"min": np.min(np.stack([p["min"] for p in parts]), axis=0),
                    "max": np.max(np.stack([p["max"] for p in parts]), axis=0), "mean": mean,
                    "std": np.sqrt(np.maximum(second - mean**2, 0.0)), "count": np.array([int(counts.sum())])}
    return out


# -- video ----------------------------------------------------------------------------------------

def choose_encoder(preferred: str | None = None) -> tuple[str, str]:
    """(PyAV encoder, info.json codec name): ``preferred`` or the first of ``ENCODERS`` this PyAV build has."""
    import av

    def available(name: str) -> bool:
        try:
            av.codec.Codec(name, "w")
        except Exception:  # PyAV raises UnknownCodecError (a ValueError) or FFmpegError
            return False
        return True

    names = dict(ENCODERS)
    if preferred:
        if not available(preferred):
            have = [e for e, _ in ENCODERS if available(e)]
            raise ValueError(f"video encoder {preferred!r} is not in this PyAV build; available: {have or 'none'}")
        return preferred, names.get(preferred, preferred)
    for encoder, codec in ENCODERS:
        if available(encoder):
            return encoder, codec
    raise ValueError(f"this PyAV build has none of the video encoders {[e for e, _ in ENCODERS]}")


class VideoWriter:
    """One mp4 file of RGB frames (yuv420p), frame k at pts k in a 1/fps time base."""

    def __init__(self, path: Path, encoder: str, width: int, height: int, fps: float, crf: int):
        import av

        if width % 2 or height % 2:
            raise LeRobotFormatError(path, f"frames of {width}x{height}: yuv420p video needs even sizes")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.frames = 0
        self._container = av.open(str(path), "w")
        rate = Fraction(fps).limit_denominator(1000)
        options = {"g": "2", "crf": str(crf)}  # a keyframe every 2 frames: random access as LeRobot writes it
        if encoder == "libsvtav1":
            options["preset"] = "10"
            os.environ.setdefault("SVT_LOG", "1")  # SVT-AV1 prints its whole configuration per file otherwise
        self._stream = self._container.add_stream(encoder, rate=rate, options=options)
        self._stream.width, self._stream.height, self._stream.pix_fmt = width, height, "yuv420p"
        self._stream.time_base = 1 / rate
        self._size = (height, width)

    def write(self, rgb: np.ndarray) -> None:
        import av

        if rgb.shape[:2] != self._size:
            raise LeRobotFormatError(self.path, f"frame {self.frames} is {rgb.shape[1]}x{rgb.shape[0]}, the "
                                     f"video is {self._size[1]}x{self._size[0]}")  # fmt: skip
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame.pts = self.frames
        self._container.mux(self._stream.encode(frame))
        self.frames += 1

    def close(self) -> None:
        self._container.mux(self._stream.encode())
        self._container.close()

    @property
    def bytes(self) -> int:
        return self.path.stat().st_size if self.path.exists() else 0


class VideoFrames:
    """Decoded RGB frames of one video file in order, with their times [s]."""

    def __init__(self, path: Path):
        import av

        if not path.is_file():
            raise LeRobotFormatError(path, "video file missing")
        self.path = path
        try:
            self._container = av.open(str(path))
            self._stream = self._container.streams.video[0]
        except (av.FFmpegError, IndexError) as exc:
            raise LeRobotFormatError(path, f"cannot open the video: {exc}") from None
        self._frames = self._decode()

    def _decode(self) -> Iterator[tuple[float, np.ndarray]]:
        import av

        try:
            for frame in self._container.decode(self._stream):
                yield float(frame.time), frame.to_ndarray(format="rgb24")
        except av.FFmpegError as exc:
            raise LeRobotFormatError(self.path, f"video does not decode: {exc}") from None

    def take(self, from_s: float, count: int, fps: float) -> Iterator[np.ndarray]:
        """The ``count`` frames from ``from_s`` on (earlier ones skipped); each must fall on the 1/fps grid."""
        half = 0.5 / fps
        taken = 0
        for time_s, rgb in self._frames:
            if time_s < from_s - half:
                continue
            expected = from_s + taken / fps
            if abs(time_s - expected) > half:
                raise LeRobotFormatError(self.path, f"frame at {time_s:.4f} s where {expected:.4f} s was expected "
                                         "(missing or extra frames)")  # fmt: skip
            yield rgb
            taken += 1
            if taken == count:
                return
        raise LeRobotFormatError(self.path, f"ends after {taken} of the {count} frames from {from_s:.4f} s")

    def close(self) -> None:
        self._container.close()


def json_stats(stats: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, Any]]:
    """stats.json form: nested lists, non-finite values as None."""
    def clean(value: Any) -> Any:
        if isinstance(value, list):
            return [clean(v) for v in value]
        return value if not isinstance(value, float) or math.isfinite(value) else None

    return {key: {name: clean(np.asarray(v).tolist()) for name, v in parts.items()} for key, parts in stats.items()}
