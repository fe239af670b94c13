"""Training samples from recorded episodes, through the robot spec and the live node's conversions.

What a sample is (observation horizon 1, as HPT fine-tunes):

* **Ticks.** Control ticks every ``1 / rate_hz`` (default: the spec's rate) from ``t0``,
  the receive time of the message after which every *required* sensor of the spec has
  a value, up to the last message of the episode.
* **Observation at a tick** = what the policy node would have built at that instant: the
  latest message of each sensor received at or before the tick (bag timestamps are the
  recorder's receive times), converted by ``hpt_ros.msgs.messages`` (``image_to_rgb`` /
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

import errno
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hpt_ros.spec import RobotSpec

# The parts of the pipeline live in their own modules; their public names are re-exported
# here, where the pipeline is documented.
from .actions import ActionSource, _quaternion_to_rpy, action_chunks, fill_actions  # noqa: F401
from .episode_selection import bag_fingerprint, select_episodes, split_episodes
from .episodes import EpisodeInfo
from .errors import DatasetError
from .feature_cache import (DATASET_FORMAT, EpisodeData, cache_folder, load_cached, save_cached,
                            default_cache_dir, episode_cache_key)
from .ticks import TickRecord, iter_ticks

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

_FEATURE_DTYPES = ("float16", "float32")


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
        folder = cache_folder(Path(cache_dir), info, key)
        cached = load_cached(folder, info, name)
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
        save_cached(folder, data, {"format": DATASET_FORMAT, "key": key, "episode": str(info.path),
                                    "rate_hz": rate, "feature_dtype": feature_dtype,
                                    "features": extractor.describe(), "stats": data.stats,
                                    "seconds": round(time.perf_counter() - started, 3)})
    data.seconds = time.perf_counter() - started
    return data


# errors of the machine (a full disk, over a quota, out of memory) rather than of one episode
_MACHINE_ERRNOS = (errno.ENOSPC, errno.EDQUOT, errno.ENOMEM)


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
                if isinstance(exc, OSError) and exc.errno in _MACHINE_ERRNOS:
                    # the machine's fault, not the episode's: skipping would train on fewer episodes
                    raise OSError(exc.errno, f"{exc.strerror} while reading {info.path}"
                                  + (f" or writing the feature cache {cache_dir}" if cache_dir else ""),
                                  exc.filename) from exc
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
