"""``hpt-ros import-lerobot DIR --robot FILE --out EPISODES``: a LeRobotDataset v3.0 -> rosbag2 episodes.

Each dataset episode becomes one episode folder (``episode_NNNN``, numbered on from the
highest already in ``EPISODES``), written by ``EpisodeWriter``, so ``hpt-ros train`` and
``hpt-ros eval`` read it like a recording. Frame ``k`` of an episode is written at
``start + round(k * 1e9 / fps)`` ns, the grid the training reader ticks on, as:

* ``observation.state`` -> one ``sensor_msgs/JointState`` (positions) per state topic of the spec;
* ``observation.images.<sensor>`` (or the key given with ``--camera SENSOR=KEY``) -> the
  camera's topic, ``sensor_msgs/Image`` rgb8 (or ``CompressedImage`` png when the spec says so);
* ``action`` -> the spec's command message (``JointTrajectory`` / ``Float64MultiArray`` /
  ``JointState`` / ``PoseStamped`` / ``TwistStamped``) and the gripper command.

So a bag exported by ``export-lerobot`` and imported back gives the same states and
actions to the last bit (float32 values travel as float64), and the frames within the
video codec's error. The feature shapes (and names, where the dataset has them) must match
the spec; every mismatch is an error naming the key.
"""

from __future__ import annotations

import argparse
import logging
import math
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hpt_ros.msgs import messages
from hpt_ros.msgs.idl import new_message
from hpt_ros.spec import RobotSpec, load_spec

from .episode_writer import EpisodeWriter, estimate_episode_bytes
from .episodes import episode_path, next_episode_index
from .lerobot_format import (
    ACTION_KEY, STATE_KEY, LeRobotFormatError, VideoFrames, action_names, image_key, read_info,
)  # fmt: skip

__all__ = ["cli", "import_lerobot"]

logger = logging.getLogger("hpt_ros.data")

DEFAULT_START_NS = 1_700_000_000_000_000_000  # 2023-11-14: a plausible wall-clock start for every bag


def _feature_names(ft: Mapping[str, Any]) -> list[str] | None:
    names = ft.get("names")
    if isinstance(names, dict):  # older datasets: {"motors": [...]}
        names = next(iter(names.values()), None)
    return [str(n) for n in names] if isinstance(names, list) else None


def _check_vector(info_path: Path, features: Mapping[str, Any], key: str, want: Sequence[str]) -> None:
    ft = features.get(key)
    if ft is None:
        raise LeRobotFormatError(info_path, f"feature missing; the dataset has: {sorted(features)}", key=key)
    if list(ft.get("shape", [])) != [len(want)]:
        raise LeRobotFormatError(info_path, f"shape {ft.get('shape')}, the spec's is [{len(want)}] ({list(want)})",
                                 key=key)  # fmt: skip
    names = _feature_names(ft)
    if names is not None and names != list(want):
        raise LeRobotFormatError(info_path, f"names {names} differ from the spec's {list(want)}", key=key)


def _camera_keys(info_path: Path, features: Mapping[str, Any], spec: RobotSpec,
                 cameras: Mapping[str, str]) -> dict[str, str]:  # fmt: skip
    """Spec camera sensor -> dataset video key (sensors the dataset lacks: only optional ones, left out)."""
    videos = sorted(k for k, ft in features.items() if ft.get("dtype") == "video")
    unknown = sorted(set(cameras) - {s.name for s in spec.image_sensors})
    if unknown:
        raise ValueError(f"--camera names {unknown}, the spec's cameras are {[s.name for s in spec.image_sensors]}")
    out = {}
    for sensor in spec.image_sensors:
        key = cameras.get(sensor.name, image_key(sensor.name))
        ft = features.get(key)
        if ft is None or ft.get("dtype") != "video":
            if not sensor.required and sensor.name not in cameras:
                continue
            kind = "missing" if ft is None else f"of dtype {ft.get('dtype')!r}, not video"
            raise LeRobotFormatError(info_path, f"{kind} for camera {sensor.name}; the dataset's videos: {videos} "
                                     "(map one with --camera SENSOR=KEY)", key=key)  # fmt: skip
        out[sensor.name] = key
    return out


def _vectors(table: Any, key: str, width: int, path: Path) -> np.ndarray:
    column = table.column(key).combine_chunks()
    values = column.flatten().to_numpy(zero_copy_only=False).astype(np.float64)
    if values.size != len(column) * width:
        raise LeRobotFormatError(path, f"{values.size} values for {len(column)} rows of width {width}", key=key)
    return values.reshape(len(column), width)


class _DataFiles:
    """Rows of the data parquet files, one file in memory at a time."""

    def __init__(self, root: Path, template: str, spec: RobotSpec):
        self.root, self.template, self.spec = root, template, spec
        self.path: Path | None = None
        self.columns: dict[str, np.ndarray] = {}

    def episode(self, row: Mapping[str, Any]) -> tuple[np.ndarray, np.ndarray]:
        """(states [n, S], actions [n, A]) of one episode, in frame order."""
        import pyarrow.parquet as pq

        path = self.root / self.template.format(chunk_index=int(row["data/chunk_index"]),
                                                file_index=int(row["data/file_index"]))  # fmt: skip
        if path != self.path:
            if not path.is_file():
                raise LeRobotFormatError(path, f"data file of episode {row['episode_index']} missing")
            try:
                table = pq.read_table(path, columns=[STATE_KEY, ACTION_KEY, "episode_index", "frame_index"])
            except Exception as exc:  # pyarrow raises ArrowInvalid, KeyError, OSError ...
                raise LeRobotFormatError(path, f"unreadable data file: {exc}") from None
            self.columns = {
                STATE_KEY: _vectors(table, STATE_KEY, self.spec.state_dim, path),
                ACTION_KEY: _vectors(table, ACTION_KEY, self.spec.action.dim, path),
                "episode_index": table.column("episode_index").to_numpy(),
                "frame_index": table.column("frame_index").to_numpy(),
            }
            self.path = path
        mine = np.flatnonzero(self.columns["episode_index"] == int(row["episode_index"]))
        mine = mine[np.argsort(self.columns["frame_index"][mine], kind="stable")]
        if len(mine) != int(row["length"]) or not np.array_equal(self.columns["frame_index"][mine],
                                                                  np.arange(len(mine))):  # fmt: skip
            raise LeRobotFormatError(path, f"episode {row['episode_index']} has {len(mine)} rows (frame indices not "
                                     f"0..{int(row['length']) - 1}), its metadata says length {row['length']}")
        states, actions = self.columns[STATE_KEY][mine], self.columns[ACTION_KEY][mine]
        for key, values in ((STATE_KEY, states), (ACTION_KEY, actions)):
            if not np.isfinite(values).all():
                raise LeRobotFormatError(path, f"non-finite values in episode {row['episode_index']}", key=key)
        return states, actions


def _episode_rows(root: Path) -> list[dict[str, Any]]:
    import pyarrow.parquet as pq

    files = sorted((root / "meta" / "episodes").glob("chunk-*/file-*.parquet"))
    if not files:
        raise LeRobotFormatError(root / "meta" / "episodes", "no episodes metadata (chunk-*/file-*.parquet)")
    rows = []
    for file in files:
        try:
            rows += pq.read_table(file).to_pylist()
        except Exception as exc:  # pyarrow's errors are not one class
            raise LeRobotFormatError(file, f"unreadable episodes metadata: {exc}") from None
    for key in ("episode_index", "length", "data/chunk_index", "data/file_index"):
        if any(key not in r for r in rows):
            raise LeRobotFormatError(files[0], "missing in the episodes metadata", key=key)
    return sorted(rows, key=lambda r: int(r["episode_index"]))


def _rpy_to_quaternion(roll: float, pitch: float, yaw: float) -> list[float]:
    """(x, y, z, w) of ZYX roll-pitch-yaw: the inverse of the training reader's quaternion -> rpy."""
    cr, sr = math.cos(roll / 2), math.sin(roll / 2)
    cp, sp = math.cos(pitch / 2), math.sin(pitch / 2)
    cy, sy = math.cos(yaw / 2), math.sin(yaw / 2)
    return [sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy, cr * cp * sy - sr * sp * cy,
            cr * cp * cy + sr * sp * sy]  # fmt: skip


def _action_messages(spec: RobotSpec, action: np.ndarray, stamp_s: float) -> list[tuple[str, Any]]:
    """(topic, message) of the command and gripper command of one action vector."""
    a = spec.action
    command = new_message(a.command.type)
    if a.kind == "joint_position":
        arm = action[[a.joints.index(j) for j in a.arm_joints]]
        if a.command.type.endswith("JointTrajectory"):
            messages.fill_joint_trajectory(command, a.arm_joints, arm, stamp_s, a.time_from_start or spec.period_s,
                                           topic=a.command.topic)  # fmt: skip
        elif a.command.type.endswith("Float64MultiArray"):
            messages.fill_float64_multi_array(command, arm, topic=a.command.topic)
        else:
            messages.fill_joint_state(command, a.arm_joints, arm, stamp_s=stamp_s, topic=a.command.topic)
        grip = float(action[a.joints.index(a.gripper.joint)]) if a.gripper else None
    else:
        if a.kind == "ee_pose":
            messages.fill_pose_stamped(command, action[:3], _rpy_to_quaternion(*action[3:6]), a.frame, stamp_s,
                                       topic=a.command.topic)  # fmt: skip
        else:
            messages.fill_twist_stamped(command, action[:3], action[3:6], a.frame, stamp_s, topic=a.command.topic)
        grip = float(action[6]) if a.gripper else None
    out = [(a.command.topic, command)]
    if a.gripper is not None and grip is not None:
        g = new_message(a.gripper.type)
        if a.gripper.type.endswith("Float64MultiArray"):
            messages.fill_float64_multi_array(g, [grip], topic=a.gripper.topic)
        else:
            messages.fill_joint_state(g, [a.gripper.joint], [grip], stamp_s=stamp_s, topic=a.gripper.topic)
        out.append((a.gripper.topic, g))
    return out


def _state_topics(spec: RobotSpec) -> dict[str, list[tuple[int, str]]]:
    """State topic -> [(position in the state vector, joint)], one JointState per topic."""
    out: dict[str, list[tuple[int, str]]] = {}
    offset = 0
    for sensor in spec.state_sensors:
        if sensor.field != "position":
            raise ValueError(f"sensor {sensor.name} reads {sensor.field!r}: import-lerobot writes joint positions "
                             "(observation.state) only")  # fmt: skip
        for j, joint in enumerate(sensor.joints):
            out.setdefault(sensor.topic, []).append((offset + j, joint))
        offset += len(sensor.joints)
    return out


def import_lerobot(
    root: str | Path,
    spec: RobotSpec | str | Path,
    out: str | Path,
    *,
    cameras: Mapping[str, str] | None = None,
    start_ns: int = DEFAULT_START_NS,
    progress: bool = True,
) -> dict[str, Any]:
    """Write every episode of the v3 dataset ``root`` as an episode folder under ``out``.

    ``cameras``: spec camera sensor -> dataset video key, where the key is not
    ``observation.images.<sensor>``. Returns ``episodes`` (the folders written), ``frames``, ``fps``.
    """
    from tqdm import tqdm

    spec = spec if isinstance(spec, RobotSpec) else load_spec(spec)
    root, out = Path(root), Path(out)
    info = read_info(root)
    info_path = root / "meta" / "info.json"
    fps = float(info["fps"])
    features = info["features"]
    _check_vector(info_path, features, STATE_KEY, spec.state_joints)
    _check_vector(info_path, features, ACTION_KEY, action_names(spec))
    keys = _camera_keys(info_path, features, spec, dict(cameras or {}))
    if keys and not info.get("video_path"):
        raise LeRobotFormatError(info_path, "no video_path template, but the dataset has videos", key="video_path")
    state_topics = _state_topics(spec)
    if abs(fps - spec.rate_hz) > 1e-9:
        logger.info("the dataset is at %g fps, the spec's control rate %g Hz: training resamples it", fps,
                    spec.rate_hz)
    rows = _episode_rows(root)
    sensors = {s.name: s for s in spec.image_sensors}
    topics = {topic: "sensor_msgs/msg/JointState" for topic in state_topics}
    topics.update({sensors[name].topic: sensors[name].type for name in keys})
    topics[spec.action.command.topic] = spec.action.command.type
    if spec.action.gripper is not None:
        topics[spec.action.gripper.topic] = spec.action.gripper.type
    data = _DataFiles(root, str(info["data_path"]), spec)
    videos: dict[str, tuple[Path, VideoFrames, float]] = {}  # camera -> (file, reader, where it stopped [s])
    first = next_episode_index(out)
    written: list[str] = []
    frames = 0
    try:
        for k, row in enumerate(tqdm(rows, desc="import", unit="episode", disable=not progress, file=sys.stderr)):
            states, actions = data.episode(row)
            n = len(states)
            readers = {}
            for name, key in keys.items():
                for part in ("chunk_index", "file_index", "from_timestamp"):
                    if f"videos/{key}/{part}" not in row:
                        raise LeRobotFormatError(root / "meta" / "episodes", "missing in the episodes metadata",
                                                 key=f"videos/{key}/{part}")  # fmt: skip
                path = root / str(info["video_path"]).format(
                    video_key=key, chunk_index=int(row[f"videos/{key}/chunk_index"]),
                    file_index=int(row[f"videos/{key}/file_index"]))
                from_s = float(row[f"videos/{key}/from_timestamp"])
                held = videos.get(name)
                if held is None or held[0] != path or held[2] > from_s + 0.5 / fps:  # another file, or behind us
                    if held is not None:
                        held[1].close()
                    held = (path, VideoFrames(path), 0.0)
                videos[name] = (held[0], held[1], from_s + n / fps)
                readers[name] = held[1].take(from_s, n, fps)
            tasks = row.get("tasks") or []
            folder = episode_path(out, first + k)
            streams = {t: (fps, 64 + 24 * len(j)) for t, j in state_topics.items()}
            for name in keys:
                h, w = features[keys[name]]["shape"][:2]
                streams[sensors[name].topic] = (fps, int(h) * int(w) * 3 + 100)
            need = estimate_episode_bytes(streams, n / fps + 1.0)
            meta = {"task": str(tasks[0]) if tasks else None, "episode_index": first + k,
                    "notes": f"imported from LeRobot dataset {root} episode {row['episode_index']}"}
            writer = EpisodeWriter(folder, topics, meta, min_free_bytes=need, flush_interval_s=None)
            try:
                for i in range(n):
                    t_ns = start_ns + int(round(i * (1e9 / fps)))  # the training reader's tick grid
                    stamp = t_ns / 1e9
                    for topic, joints in state_topics.items():
                        msg = messages.fill_joint_state(new_message("sensor_msgs/msg/JointState"),
                                                        [j for _, j in joints], states[i, [p for p, _ in joints]],
                                                        stamp_s=stamp, topic=topic)  # fmt: skip
                        writer.write(topic, t_ns, msg.serialize())
                    for name, frames_of in readers.items():
                        rgb = next(frames_of)
                        sensor = sensors[name]
                        if sensor.type.endswith("CompressedImage"):
                            msg = messages.rgb_to_compressed(new_message(sensor.type), rgb, "png", stamp_s=stamp,
                                                             frame_id=name, topic=sensor.topic)  # fmt: skip
                        else:
                            msg = messages.numpy_to_image(new_message(sensor.type), rgb, "rgb8", stamp_s=stamp,
                                                          frame_id=name, topic=sensor.topic)  # fmt: skip
                        writer.write(sensor.topic, t_ns, msg.serialize())
                    for topic, msg in _action_messages(spec, actions[i], stamp):
                        writer.write(topic, t_ns, msg.serialize())
                writer.close()
            except BaseException:
                writer.discard()  # half an episode would read as a whole, shorter one
                raise
            written.append(str(folder))
            frames += n
    finally:
        for _, reader, _ in videos.values():
            reader.close()
    return {"episodes": written, "frames": frames, "fps": fps}


# -- command line ------------------------------------------------------------------------------------

def build_arg_parser(prog: str = "hpt-ros import-lerobot") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Write a LeRobotDataset v3.0 as rosbag2 episodes on "
                                     "the robot spec's topics.")  # fmt: skip
    parser.add_argument("dataset", metavar="DIR", help="the dataset folder (meta/info.json inside)")
    parser.add_argument("--robot", required=True, metavar="FILE", help="robot spec YAML (or a shipped name)")
    parser.add_argument("--out", required=True, metavar="EPISODES", help="recording folder for the episodes")
    parser.add_argument("--camera", action="append", default=[], metavar="SENSOR=KEY",
                        help="the dataset video key of a spec camera (default: observation.images.<sensor>)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def cli(argv: Sequence[str], prog: str = "hpt-ros import-lerobot") -> int:
    """Parse ``argv`` and import; 0 when done, 2 when the dataset, spec or arguments are unusable."""
    args = build_arg_parser(prog).parse_args(list(argv))
    from hpt_ros.spec import SpecError

    from .errors import BagError

    try:
        cameras = dict(item.split("=", 1) for item in args.camera)
    except ValueError:
        print(f"error: --camera takes SENSOR=KEY, got {args.camera}", file=sys.stderr)
        return 2
    try:
        summary = import_lerobot(args.dataset, args.robot, args.out, cameras=cameras, progress=not args.no_progress)
    except (SpecError, BagError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{len(summary['episodes'])} episode(s), {summary['frames']} frames at {summary['fps']:g} fps -> {args.out}")
    return 0
