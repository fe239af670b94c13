"""Training samples from recorded episodes, through the robot spec and the live node's conversions.

What a sample is (observation horizon 1, as HPT fine-tunes):

* **Ticks.** Control ticks every ``1 / rate_hz`` (default: the spec's rate) from ``t0``,
  the receive time of the message after which every *required* sensor of the spec has
  a value, up to the last message of the episode.
* **Observation at a tick** = what the policy node would have built at that instant: the
  latest message of each sensor received at or before the tick (bag timestamps are the
  recorder's receive times), converted by ``hpt_ros.ros.messages`` (``image_to_rgb`` /
  ``compressed_image_to_rgb`` / ``joint_state_to_array``) and assembled by the runtime's
  ``ObservationCache`` (same staleness rules, same view stacking). A tick the live node
  would have refused (a required sensor older than its ``max_age``, never received, or
  non-finite) is not a sample; its reason is counted.
* **Action at a tick** = the latest recorded command at or before the tick: the action
  topic (default: the spec's command topic; ``JointTrajectory`` last point,
  ``Float64MultiArray`` in ``action.arm_joints`` order, ``JointState`` by name,
  ``PoseStamped`` as xyz + roll/pitch/yaw, ``TwistStamped``) plus the gripper topic, laid
  out as ``spec.action.joints``. Before the first command of a dimension, a joint the
  state also measures takes its measured position (an arm nobody commands holds still);
  any other dimension takes its first recorded value.
* **Target** of the sample at tick ``t`` = the action chunk ``a[t], a[t+1], ...,
  a[t+horizon-1]``; past the last tick the last action repeats (upstream HPT pads so).

Images are turned into ResNet-18 tokens once (``FeatureExtractor``) and cached on disk,
one folder per episode under ``cache_dir``, keyed by a hash of: the bag's identity
(sizes and head/tail bytes of its storage files), every spec field the extraction reads,
the rate, the encoder weights (sha256) and image size, the feature dtype and this
module's format version. A second run with the same inputs reads the cache and never
opens the bag. Per episode only distinct frames are encoded (a camera slower than the
control rate repeats a frame over several ticks).

Episodes: ``select_episodes`` uses every saved episode (complete, or recovered by
``hpt-ros bag repair``), skips those still being written or needing repair, and with
``only_success`` keeps only ``success: true``. ``split_episodes`` makes a deterministic,
seeded split by episode (never by sample: neighbouring ticks are near-duplicates).
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpt_ros.spec import RobotSpec

from .episodes import EpisodeInfo, list_episodes, read_episode

__all__ = [
    "DATASET_FORMAT",
    "ActionSource",
    "DatasetError",
    "EpisodeData",
    "SampleSet",
    "TickRecord",
    "action_chunks",
    "bag_fingerprint",
    "fill_actions",
    "build_episode",
    "default_cache_dir",
    "episode_cache_key",
    "iter_ticks",
    "load_episodes",
    "select_episodes",
    "split_episodes",
]

logger = logging.getLogger("hpt_ros.data")

DATASET_FORMAT = "hpt_ros.dataset/1"
_FEATURE_DTYPES = ("float16", "float32")


class DatasetError(ValueError):
    """An episode cannot be turned into samples (names the episode and the reason)."""


def default_cache_dir() -> Path:
    """``$HPT_ROS_CACHE`` or ``$XDG_CACHE_HOME/hpt_ros/features`` (``~/.cache/hpt_ros/features``)."""
    if os.environ.get("HPT_ROS_CACHE"):
        return Path(os.environ["HPT_ROS_CACHE"]).expanduser()
    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    return base / "hpt_ros" / "features"


# -- episodes -----------------------------------------------------------------------------------


def select_episodes(
    roots: str | Path | Sequence[str | Path], *, only_success: bool = False
) -> tuple[list[EpisodeInfo], list[tuple[EpisodeInfo, str]]]:
    """(used, [(skipped, reason)]) among the episodes under ``roots``.

    Each root is a recording folder (``episode_NNNN`` folders inside) or one episode
    folder. Used: every saved episode (``complete``, or ``recovered`` by ``hpt-ros bag
    repair``); with ``only_success`` only those marked ``success: true``. Skipped: an
    episode needing repair (its recorder was killed: run ``hpt-ros bag repair``), one
    still being written (``complete: false``), one with an unreadable episode.yaml or
    without a bag, and with ``only_success`` those with ``success`` false or unset.
    """
    if isinstance(roots, (str, Path)):
        roots = [roots]
    found: list[EpisodeInfo] = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such episode folder")
        inside = list_episodes(root)
        if inside:
            found.extend(inside)
        else:
            try:
                found.append(read_episode(root))
            except FileNotFoundError:
                raise FileNotFoundError(f"{root}: holds no episodes (episode_NNNN folders with bags)") from None
    used, skipped = [], []
    for info in found:
        if info.error:
            skipped.append((info, f"unreadable episode.yaml: {info.error}"))
        elif not info.bag_files:
            skipped.append((info, "no bag file"))
        elif info.needs_repair:
            skipped.append((info, "recorder was killed: run 'hpt-ros bag repair' on it first"))
        elif not (info.complete or info.recovered):
            skipped.append((info, "not complete (still being recorded?)"))
        elif only_success and info.success is not True:
            skipped.append((info, f"success is {info.success} (--only-success)"))
        else:
            used.append(info)
    return used, skipped


def split_episodes(names: Sequence[str], val_fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, validation) names: a deterministic, seeded split by episode.

    Episodes are ranked by ``sha256(f"{seed}:{name}")`` and the first
    ``round(val_fraction * n)`` (at least 1 when ``val_fraction > 0`` and n >= 2, never
    all) go to validation, so the split depends on the names and the seed only, not on
    the listing order, and adding an episode moves at most one other.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    names = sorted(set(names))
    n = len(names)
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    else:
        n_val = 0
    ranked = sorted(names, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    val = set(ranked[:n_val])
    return [s for s in names if s not in val], [s for s in names if s in val]


def bag_fingerprint(info: EpisodeInfo, head_bytes: int = 1 << 20) -> str:
    """Identity of an episode's recording: per storage file its name, size and the sha256 of
    its first and last ``head_bytes`` (survives copying; changes when the bag is rewritten)."""
    digest = hashlib.sha256()
    for file in sorted(info.bag_files):
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}:".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(head_bytes))
            if size > head_bytes:
                handle.seek(max(size - head_bytes, head_bytes))
                digest.update(handle.read(head_bytes))
    return digest.hexdigest()


# -- actions ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ActionSource:
    """Where the action of a tick is read from: an arm topic and an optional gripper topic."""

    topic: str
    type: str
    gripper_topic: str | None = None
    gripper_type: str | None = None

    @classmethod
    def from_spec(
        cls,
        spec: RobotSpec,
        topic: str | None = None,
        msg_type: str | None = None,
        gripper_topic: str | None = None,
        gripper_type: str | None = None,
    ) -> ActionSource:
        """The spec's command (+ gripper) topics, or the given ones (``gripper_topic=""``: none)."""
        g = spec.action.gripper
        if gripper_topic is None:
            gripper_topic = g.topic if g is not None else None
            gripper_type = gripper_type or (g.type if g is not None else None)
        elif gripper_topic == "":
            gripper_topic, gripper_type = None, None
        else:
            gripper_type = gripper_type or (g.type if g is not None else "std_msgs/msg/Float64MultiArray")
        return cls(topic or spec.action.command.topic, msg_type or spec.action.command.type,
                   gripper_topic, gripper_type)

    def describe(self) -> dict[str, Any]:
        return {"topic": self.topic, "type": self.type, "gripper_topic": self.gripper_topic,
                "gripper_type": self.gripper_type}


def _quaternion_to_rpy(qx: float, qy: float, qz: float, qw: float) -> tuple[float, float, float]:
    """Inverse of the policy node's roll/pitch/yaw -> quaternion (ZYX, intrinsic)."""
    roll = math.atan2(2 * (qw * qx + qy * qz), 1 - 2 * (qx * qx + qy * qy))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (qw * qy - qz * qx))))
    yaw = math.atan2(2 * (qw * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))
    return roll, pitch, yaw


class _ActionDecoder:
    """Decoded action messages -> (indices, values) into the action vector."""

    def __init__(self, spec: RobotSpec, source: ActionSource) -> None:
        action = spec.action
        self.spec = spec
        self.source = source
        self.dim = action.dim
        self.index = {j: i for i, j in enumerate(action.joints)}
        self.arm_index = np.array([self.index[j] for j in action.arm_joints], dtype=np.intp) \
            if action.kind == "joint_position" else np.arange(6)
        if action.kind == "joint_position":
            self.gripper_index = self.index.get(action.gripper.joint) if action.gripper else None
        else:
            self.gripper_index = 6 if action.gripper else None

    def _by_name(self, names: Sequence[str], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        pairs = [(self.index[n], v) for n, v in zip(names, values) if n in self.index]
        if not pairs:
            return np.zeros(0, np.intp), np.zeros(0)
        idx, vals = zip(*pairs)
        return np.asarray(idx, np.intp), np.asarray(vals, np.float64)

    def arm(self, msg: Any, msg_type: str) -> tuple[np.ndarray, np.ndarray]:
        kind = self.spec.action.kind
        if msg_type.endswith("JointTrajectory"):
            if not len(msg.points):
                return np.zeros(0, np.intp), np.zeros(0)
            return self._by_name(list(msg.joint_names), list(msg.points[-1].positions))
        if msg_type.endswith("JointState"):
            return self._by_name(list(msg.name), list(msg.position))
        if msg_type.endswith("Float64MultiArray"):
            data = np.asarray(msg.data, np.float64)[int(msg.layout.data_offset):]
            n = len(self.arm_index)
            if data.shape[0] < n:
                raise ValueError(f"{data.shape[0]} values, the action needs {n}")
            return self.arm_index, data[:n]
        if msg_type.endswith("PoseStamped") and kind == "ee_pose":
            p, q = msg.pose.position, msg.pose.orientation
            return np.arange(6), np.array([p.x, p.y, p.z, *_quaternion_to_rpy(q.x, q.y, q.z, q.w)])
        if msg_type.endswith("TwistStamped") and kind == "ee_twist":
            lin, ang = msg.twist.linear, msg.twist.angular
            return np.arange(6), np.array([lin.x, lin.y, lin.z, ang.x, ang.y, ang.z])
        raise ValueError(f"cannot read a {kind} action from {msg_type}")

    def gripper(self, msg: Any, msg_type: str) -> tuple[np.ndarray, np.ndarray]:
        if self.gripper_index is None:
            return np.zeros(0, np.intp), np.zeros(0)
        if msg_type.endswith("Float64MultiArray"):
            data = np.asarray(msg.data, np.float64)[int(msg.layout.data_offset):]
        elif msg_type.endswith("JointState"):
            names = list(msg.name)
            joint = self.spec.action.gripper.joint if self.spec.action.gripper else ""
            data = np.asarray([msg.position[names.index(joint)]] if joint in names else list(msg.position)[:1])
        else:
            raise ValueError(f"cannot read a gripper command from {msg_type}")
        if data.shape[0] < 1:
            return np.zeros(0, np.intp), np.zeros(0)
        return np.array([self.gripper_index], np.intp), data[:1].astype(np.float64)


# -- ticks ----------------------------------------------------------------------------------------


@dataclass
class TickRecord:
    """One control tick of an episode.

    ``action``: the latest recorded command per action dimension (NaN: none yet).
    ``measured``: the latest state vector (spec state joints; NaN before any), used to
    fill actions before the first command. ``observation`` is None when the live node
    would have held at this tick; ``skip_reason`` then says why.
    """

    time_ns: int
    action: np.ndarray
    measured: np.ndarray
    observation: Any = None
    image_keys: tuple[tuple[str, int], ...] = ()
    skip_reason: str | None = None


def iter_ticks(
    bag: str | Path,
    spec: RobotSpec,
    *,
    rate_hz: float | None = None,
    action_source: ActionSource | None = None,
    stats: Counter[str] | None = None,
) -> Iterator[TickRecord]:
    """The control ticks of one bag, in order (see the module docstring for the rules).

    ``stats`` (a Counter) receives counts: messages per kind, conversion errors, skipped
    ticks per reason. Raises ``DatasetError`` when a required sensor or the action topic
    is missing or has another type.
    """
    from hpt_ros.ros import messages
    from hpt_ros.runtime.errors import ObservationError, SensorDataError
    from hpt_ros.runtime.observation import ObservationCache

    from .bag_reader import open_bag
    from .errors import BagError
    from .typestores import same_msgtype

    stats = stats if stats is not None else Counter()
    source = action_source or ActionSource.from_spec(spec)
    decoder = _ActionDecoder(spec, source)
    rate = float(rate_hz or spec.rate_hz)
    period_ns = 1e9 / rate
    state_joints = spec.state_joints

    with open_bag(bag) as reader:
        topics = reader.topics
        by_topic: dict[str, list[tuple[str, Any]]] = {}
        for s in spec.sensors:
            info = topics.get(s.topic)
            if info is None or info.count == 0:
                if s.required:
                    raise DatasetError(f"{bag}: required sensor {s.name} ({s.topic}) has no messages in the bag")
                continue
            if not same_msgtype(info.msgtype, s.type):
                raise DatasetError(f"{bag}: sensor {s.name} topic {s.topic} is {info.msgtype}, the spec says {s.type}")
            by_topic.setdefault(s.topic, []).append(("sensor", s))
        for role, topic, msg_type in (("action", source.topic, source.type),
                                      ("gripper", source.gripper_topic, source.gripper_type)):
            if topic is None:
                continue
            info = topics.get(topic)
            if info is None or info.count == 0:
                if role == "action":
                    raise DatasetError(f"{bag}: action topic {topic} has no messages in the bag "
                                       f"(topics: {sorted(topics)}); pass the topic the commands were recorded on")
                logger.warning("%s: gripper topic %s not recorded; gripper actions come from the state", bag, topic)
                continue
            if msg_type and not same_msgtype(info.msgtype, msg_type):
                raise DatasetError(f"{bag}: {role} topic {topic} is {info.msgtype}, expected {msg_type}")
            by_topic.setdefault(topic, []).append((role, info.msgtype))

        cache = ObservationCache(spec)
        sensors_by_name = {s.name: s for s in spec.sensors}
        required = {s.name for s in spec.sensors if s.required}
        seen: set[str] = set()
        pending_images: dict[str, tuple[int, Any, str]] = {}  # sensor -> (ts, raw, msgtype) not yet decoded
        image_keys: dict[str, int] = {}  # sensor -> ts of the frame in the cache
        action = np.full(decoder.dim, np.nan)
        measured = np.full(len(state_joints), np.nan)
        t0: int | None = None
        k = 0
        last_ts = 0

        def tick_time(i: int) -> int:
            assert t0 is not None
            return t0 + int(round(i * period_ns))

        def emit(t_ns: int) -> TickRecord:
            for name, (ts, raw, msgtype) in list(pending_images.items()):
                sensor = sensors_by_name[name]
                try:
                    msg = reader.deserialize(raw, msgtype, topic=sensor.topic)
                    convert = (messages.compressed_image_to_rgb if msgtype.endswith("CompressedImage")
                               else messages.image_to_rgb)
                    cache.update(name, convert(msg, topic=sensor.topic), ts / 1e9)
                    image_keys[name] = ts
                except (messages.MessageConversionError, SensorDataError, BagError) as exc:
                    stats["conversion_errors"] += 1
                    logger.debug("%s: %s", bag, exc)
                del pending_images[name]
            record = TickRecord(t_ns, action.copy(), measured.copy())
            try:
                obs = cache.build(t_ns / 1e9)
            except ObservationError as exc:
                reason = f"{type(exc).__name__}: {getattr(exc, 'sensor', '')}"
                record.skip_reason = reason
                stats[f"skipped_ticks[{reason}]"] += 1
                return record
            record.observation = obs
            record.image_keys = tuple((s.name, image_keys.get(s.name, -1)) for s in spec.image_sensors)
            stats["ticks"] += 1
            return record

        for topic, msgtype, ts, raw in reader.messages(by_topic.keys()):
            if t0 is not None:
                while tick_time(k) < ts:
                    yield emit(tick_time(k))
                    k += 1
            last_ts = max(last_ts, ts)
            for role, what in by_topic[topic]:
                if role == "sensor":
                    sensor = what
                    stats[f"messages[{sensor.name}]"] += 1
                    if sensor.is_image:
                        pending_images[sensor.name] = (ts, raw, msgtype)
                        seen.add(sensor.name)
                        continue
                    try:
                        msg = reader.deserialize(raw, msgtype, topic=topic)
                        values = messages.joint_state_to_array(msg, sensor.joints, field=sensor.field, topic=topic)
                        cache.update(sensor.name, values, ts / 1e9)
                    except (messages.MessageConversionError, SensorDataError, BagError) as exc:
                        stats["conversion_errors"] += 1
                        logger.debug("%s: %s", bag, exc)
                        continue
                    seen.add(sensor.name)
                    offset = 0
                    for s in spec.state_sensors:
                        if s.name == sensor.name:
                            measured[offset: offset + len(s.joints)] = values
                        offset += len(s.joints)
                else:
                    try:
                        msg = reader.deserialize(raw, msgtype, topic=topic)
                        idx, vals = decoder.arm(msg, msgtype) if role == "action" else decoder.gripper(msg, msgtype)
                    except (ValueError, AttributeError, IndexError, BagError) as exc:
                        stats["conversion_errors"] += 1
                        logger.debug("%s: %s %s: %s", bag, role, topic, exc)
                        continue
                    if len(idx) and np.all(np.isfinite(vals)):
                        action[idx] = vals
                        stats[f"messages[{role}]"] += 1
            if t0 is None and required <= seen:
                t0 = ts
        if t0 is None:
            raise DatasetError(f"{bag}: the required sensors {sorted(required - seen)} never all had a value")
        while tick_time(k) <= last_ts:
            yield emit(tick_time(k))
            k += 1


def fill_actions(actions: np.ndarray, measured: np.ndarray, spec: RobotSpec) -> np.ndarray:
    """Fill NaN action entries (before the first command of a dimension) as documented above.

    Raises ``ValueError`` naming the dimension when one was never recorded and cannot be
    taken from the state.
    """
    actions = actions.copy()
    state_pos = {j: i for i, j in enumerate(spec.state_joints)}
    for d in range(actions.shape[1]):
        missing = np.isnan(actions[:, d])
        if not missing.any():
            continue
        joint = spec.action.joints[d] if d < len(spec.action.joints) else f"dim {d}"
        if spec.action.kind == "joint_position" and joint in state_pos:
            actions[missing, d] = measured[missing, state_pos[joint]]
            missing = np.isnan(actions[:, d])
        if missing.any():
            recorded = np.flatnonzero(~np.isnan(actions[:, d]))
            if not len(recorded):
                raise ValueError(f"action dimension {d} ({joint}) is never recorded")
            actions[missing, d] = actions[recorded[0], d]
    return actions


def action_chunks(actions: np.ndarray, ticks: np.ndarray, horizon: int) -> np.ndarray:
    """Chunks [len(ticks), horizon, A]: ``actions[t + i]``, the last action repeated past the end."""
    n = actions.shape[0]
    index = np.minimum(np.asarray(ticks)[:, None] + np.arange(horizon)[None, :], n - 1)
    return actions[index]


# -- one episode with features ------------------------------------------------------------------------


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
    """The sha256 that names an episode's cache entry (see the module docstring)."""
    doc = {"format": DATASET_FORMAT, "bag": bag_fingerprint(info), "spec": _spec_key(spec), "rate_hz": rate_hz,
           "action_source": source.describe(), "features": extractor_key, "feature_dtype": feature_dtype}
    return hashlib.sha256(json.dumps(doc, sort_keys=True, default=str).encode()).hexdigest()


_ARRAYS = ("times_ns", "valid", "states", "actions", "frame_index")


def _cache_folder(cache_dir: Path, info: EpisodeInfo, key: str) -> Path:
    return cache_dir / f"{info.path.name}-{key[:20]}"


def _load_cached(folder: Path, info: EpisodeInfo, name: str) -> EpisodeData | None:
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


def _save_cached(folder: Path, data: EpisodeData, meta: dict[str, Any]) -> None:
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


def build_episode(
    info: EpisodeInfo,
    spec: RobotSpec,
    extractor: Any,
    *,
    name: str | None = None,
    rate_hz: float | None = None,
    action_source: ActionSource | None = None,
    feature_dtype: str = "float16",
    cache_dir: str | Path | None = None,
    progress: Callable[[int], None] | None = None,
) -> EpisodeData:
    """Ticks and features of one episode, from the cache when it holds them, else from the bag.

    ``extractor``: a ``FeatureExtractor`` (frames -> tokens, with ``describe()``).
    ``progress(n)`` is called with the number of frames encoded as it goes.
    """
    if feature_dtype not in _FEATURE_DTYPES:
        raise ValueError(f"feature_dtype must be one of {_FEATURE_DTYPES}, got {feature_dtype!r}")
    name = name or info.path.name
    rate = float(rate_hz or spec.rate_hz)
    source = action_source or ActionSource.from_spec(spec)
    started = time.perf_counter()
    folder = None
    key = ""
    if cache_dir is not None:
        key = episode_cache_key(info, spec, rate, source, extractor.describe(), feature_dtype)
        folder = _cache_folder(Path(cache_dir), info, key)
        cached = _load_cached(folder, info, name)
        if cached is not None:
            cached.seconds = time.perf_counter() - started
            return cached

    stats: Counter[str] = Counter()
    times, valid, states, actions, measured, frame_rows = [], [], [], [], [], []
    frame_of: dict[tuple[str, int], int] = {}  # (sensor, stamp) -> row
    pending: list[np.ndarray] = []
    chunks: list[np.ndarray] = []
    batch = max(1, int(getattr(extractor, "batch_size", 32)))
    out_dtype = np.float16 if feature_dtype == "float16" else np.float32

    def flush() -> None:
        if pending:
            chunks.append(extractor(pending).astype(out_dtype))
            if progress is not None:
                progress(len(pending))
            pending.clear()

    views = spec.image_sensors
    for tick in iter_ticks(info.path, spec, rate_hz=rate, action_source=source, stats=stats):
        times.append(tick.time_ns)
        actions.append(tick.action)
        measured.append(tick.measured)
        obs = tick.observation
        if obs is None:
            valid.append(False)
            states.append(np.full(spec.state_dim, np.nan, np.float32))
            frame_rows.append([-1] * len(views))
            continue
        valid.append(True)
        states.append(np.asarray(obs.state, np.float32))
        if "frame_height" not in stats:
            stats["frame_height"], stats["frame_width"] = int(obs.images.shape[1]), int(obs.images.shape[2])
        rows = []
        for v, key_v in enumerate(tick.image_keys):
            row = frame_of.get(key_v) if key_v[1] >= 0 else None
            if row is None:
                row = len(frame_of)
                if key_v[1] >= 0:
                    frame_of[key_v] = row
                else:  # an optional camera never received: a black frame, encoded once per tick
                    frame_of[(key_v[0], -1 - row)] = row
                pending.append(np.array(obs.images[v]))
                if len(pending) >= batch:
                    flush()
            rows.append(row)
        frame_rows.append(rows)
    flush()

    if not times:
        raise DatasetError(f"{info.path}: no control tick")
    action_array = np.asarray(actions, np.float64)
    try:
        filled = fill_actions(action_array, np.asarray(measured, np.float64), spec)
    except ValueError as exc:
        raise DatasetError(f"{info.path}: {exc}") from None
    features = np.concatenate(chunks) if chunks else np.zeros((0, 49, 512), out_dtype)
    data = EpisodeData(
        name=name, path=info.path, times_ns=np.asarray(times, np.int64), valid=np.asarray(valid, bool),
        states=np.asarray(states, np.float32), actions=filled.astype(np.float32),
        frame_index=np.asarray(frame_rows, np.int64).reshape(len(times), len(views)), features=features,
        stats=dict(stats), info=info, cached=False,
    )
    data.stats["frames_encoded"] = int(features.shape[0])
    if data.num_samples == 0:
        logger.warning("%s: no tick the policy node would have acted on (%s)", info.path, dict(stats))
    if folder is not None:
        _save_cached(folder, data, {"format": DATASET_FORMAT, "key": key, "episode": str(info.path),
                                    "rate_hz": rate, "feature_dtype": feature_dtype,
                                    "features": extractor.describe(), "stats": data.stats,
                                    "seconds": round(time.perf_counter() - started, 3)})
    data.seconds = time.perf_counter() - started
    return data


def load_episodes(
    infos: Iterable[EpisodeInfo],
    spec: RobotSpec,
    extractor: Any,
    *,
    names: Sequence[str] | None = None,
    rate_hz: float | None = None,
    action_source: ActionSource | None = None,
    feature_dtype: str = "float16",
    cache_dir: str | Path | None = None,
    progress: bool = True,
    skip_errors: bool = True,
) -> tuple[list[EpisodeData], list[tuple[EpisodeInfo, str]]]:
    """``build_episode`` for each episode, with a tqdm bar (frames/s); (episodes, [(failed, reason)])."""
    infos = list(infos)
    names = list(names) if names is not None else [i.path.name for i in infos]
    out: list[EpisodeData] = []
    failed: list[tuple[EpisodeInfo, str]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(infos), desc="episodes", unit="ep", dynamic_ncols=True)
    frames = [0]
    started = time.perf_counter()

    def on_frames(n: int) -> None:
        frames[0] += n
        if bar is not None:
            rate = frames[0] / max(time.perf_counter() - started, 1e-9)
            bar.set_postfix_str(f"{frames[0]} frames encoded, {rate:.1f} frames/s")

    try:
        for info, name in zip(infos, names):
            try:
                out.append(build_episode(info, spec, extractor, name=name, rate_hz=rate_hz,
                                         action_source=action_source, feature_dtype=feature_dtype,
                                         cache_dir=cache_dir, progress=on_frames))
            except (DatasetError, ValueError, OSError) as exc:
                if not skip_errors:
                    raise
                logger.warning("skipping episode %s: %s", info.path, exc)
                failed.append((info, str(exc)))
            if bar is not None:
                bar.update(1)
    finally:
        if bar is not None:
            bar.close()
    return out, failed


# -- samples ----------------------------------------------------------------------------------------


class SampleSet:
    """The samples of some episodes, ready for batches: features, state, target chunk.

    Features of all episodes are gathered into one array (in RAM, in the cache's dtype);
    a batch converts only its rows to float32.
    """

    def __init__(self, episodes: Sequence[EpisodeData], horizon: int) -> None:
        self.episodes = list(episodes)
        self.horizon = int(horizon)
        feats, frame_idx, states, chunks, origin = [], [], [], [], []
        offset = 0
        for e_i, ep in enumerate(self.episodes):
            ticks = np.flatnonzero(ep.valid)
            feats.append(np.asarray(ep.features))
            frame_idx.append(ep.frame_index[ticks] + offset)
            states.append(ep.states[ticks])
            chunks.append(action_chunks(ep.actions, ticks, self.horizon))
            origin.append(np.stack([np.full(len(ticks), e_i), ticks], axis=1))
            offset += ep.features.shape[0]
        views = self.episodes[0].frame_index.shape[1] if self.episodes else 0
        self.features = np.concatenate(feats) if feats else np.zeros((0, 49, 512), np.float16)
        self.frame_index = np.concatenate(frame_idx) if frame_idx else np.zeros((0, views), np.int64)
        self.states = np.concatenate(states) if states else np.zeros((0, 0), np.float32)
        self.chunks = np.concatenate(chunks) if chunks else np.zeros((0, self.horizon, 0), np.float32)
        self.origin = np.concatenate(origin) if origin else np.zeros((0, 2), np.int64)

    def __len__(self) -> int:
        return int(self.states.shape[0])

    @property
    def all_actions(self) -> np.ndarray:
        """Every per-tick action of the episodes [T, A] (what the action normaliser is fitted on)."""
        return np.concatenate([ep.actions for ep in self.episodes]) if self.episodes else np.zeros((0, 0))

    def batch(self, index: np.ndarray) -> tuple[Any, Any, Any]:
        """(features float32 [B, V, 49, 512], state float32 [B, S], chunk float32 [B, H, A]) tensors."""
        import torch

        rows = self.frame_index[index]  # [B, V]
        feats = self.features[rows.reshape(-1)].reshape(rows.shape + self.features.shape[1:])
        return (torch.from_numpy(np.ascontiguousarray(feats)).float(), torch.from_numpy(self.states[index]),
                torch.from_numpy(self.chunks[index]))
