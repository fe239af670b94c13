"""``hpt-ros export-lerobot EPISODES... --robot FILE --out DIR``: rosbag2 episodes -> a LeRobotDataset v3.0.

The frames are the training samples: ``iter_ticks`` resamples each bag at the control
rate through the robot spec, exactly as ``hpt-ros train`` reads it (the latest message of
each sensor at or before a tick, the live node's conversions and staleness rules), and
``fill_actions`` fills the actions before the first command as training does. A tick the
policy node would have held (a stale or missing sensor) is not a frame; the frames of an
episode are numbered without gaps, ``timestamp = frame_index / fps``.

Layout and file formats: :mod:`hpt_ros.data.lerobot_format`. The dataset is written to
``DIR.partial`` and renamed to ``DIR`` when complete, so a failed export never leaves a
dataset that looks whole; an existing, non-empty ``DIR`` is refused.

An episode that cannot be read (a missing topic, frames that change size) is skipped and
named; if it failed half-way, its frames stay in the video file, referenced by no episode.

Exit status: 0 when every episode was exported, 1 when some were skipped (named with the
reason; the others are in the dataset), 2 when nothing could be exported.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hpt_ros.spec import RobotSpec, load_spec

from .dataset import DatasetError, fill_actions, iter_ticks, select_episodes
from .episodes import EpisodeInfo
from .errors import BagError
from .lerobot_format import (
    ACTION_KEY, CHUNKS_SIZE, CODEBASE_VERSION, DATA_FILE_SIZE_MB, DATA_PATH, EPISODES_PATH, INDEX_FEATURES,
    INFO_PATH, STATE_KEY, STATS_PATH, TASKS_PATH, VIDEO_FILE_SIZE_MB, VIDEO_PATH, LeRobotFormatError, VideoWriter,
    aggregate_stats, array_stats, choose_encoder, hf_features_metadata, image_key, image_stats, json_stats,
    spec_features,
)  # fmt: skip

__all__ = ["cli", "export_lerobot"]

logger = logging.getLogger("hpt_ros.data")


class _Files:
    """chunk/file indices of one kind of file, rolling over at ``limit_bytes``."""

    def __init__(self, limit_bytes: float):
        self.chunk, self.file, self.limit = 0, 0, limit_bytes

    def next(self) -> None:
        self.file += 1
        if self.file == CHUNKS_SIZE:
            self.chunk, self.file = self.chunk + 1, 0


class _ImageStats:
    def __init__(self) -> None:
        self.sums, self.squares = np.zeros(3), np.zeros(3)
        self.low, self.high = np.full(3, 255.0), np.zeros(3)
        self.pixels = self.frames = 0

    def add(self, rgb: np.ndarray) -> None:
        flat = rgb.reshape(-1, 3)
        self.sums += flat.sum(axis=0, dtype=np.int64)
        self.squares += np.einsum("ij,ij->j", flat, flat, dtype=np.int64)  # exact: integer sums
        self.low, self.high = np.minimum(self.low, flat.min(axis=0)), np.maximum(self.high, flat.max(axis=0))
        self.pixels += flat.shape[0]
        self.frames += 1

    def stats(self) -> dict[str, np.ndarray]:
        return image_stats(self.sums, self.squares, self.low, self.high, self.pixels, self.frames)


def _write_parquet(table: Any, path: Path, features: dict[str, Any] | None = None) -> None:
    import pyarrow.parquet as pq

    if features is not None:
        table = table.replace_schema_metadata({b"huggingface": hf_features_metadata(features, table.column_names)})
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _data_table(rows: dict[str, list[np.ndarray]], spec: RobotSpec) -> Any:
    import pyarrow as pa

    columns: dict[str, Any] = {}
    for key, width in ((STATE_KEY, spec.state_dim), (ACTION_KEY, spec.action.dim)):
        flat = np.concatenate(rows[key]).astype(np.float32).reshape(-1)
        columns[key] = pa.FixedSizeListArray.from_arrays(pa.array(flat, pa.float32()), width)
    for key, ft in INDEX_FEATURES.items():
        columns[key] = pa.array(np.concatenate(rows[key]).astype(ft["dtype"]))
    return pa.table(columns)


def _tasks_table(tasks: list[str]) -> Any:
    """meta/tasks.parquet: ``pandas.read_parquet`` gives task_index indexed by the task string, as LeRobot reads it."""
    import pyarrow as pa

    table = pa.table({"task_index": pa.array(range(len(tasks)), pa.int64()), "task": pa.array(tasks, pa.string())})
    pandas = {"index_columns": ["task"], "column_indexes": [], "pandas_version": "2.2.0",
              "creator": {"library": "pyarrow", "version": pa.__version__},
              "columns": [{"name": "task_index", "field_name": "task_index", "pandas_type": "int64",
                           "numpy_type": "int64", "metadata": None},
                          {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
                           "metadata": None}]}  # fmt: skip
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas).encode()})


class _EpisodeFrames:
    """The observations of an episode's valid ticks; after them, ``actions`` holds those ticks' filled actions."""

    def __init__(self, info: EpisodeInfo, spec: RobotSpec, fps: float, stats: Counter[str]):
        self.info, self.spec, self.fps, self.stats = info, spec, fps, stats
        self.actions: np.ndarray | None = None

    def __iter__(self) -> Iterator[Any]:
        actions, measured, valid = [], [], []
        for tick in iter_ticks(self.info.path, self.spec, rate_hz=self.fps, stats=self.stats):
            actions.append(tick.action)
            measured.append(tick.measured)
            valid.append(tick.observation is not None)
            if tick.observation is not None:
                yield tick.observation
        if not actions:
            raise DatasetError(f"{self.info.path}: no control tick")
        try:  # over every tick, as training fills them, then the frames' rows
            filled = fill_actions(np.asarray(actions, np.float64), np.asarray(measured, np.float64), self.spec)
        except ValueError as exc:
            raise DatasetError(f"{self.info.path}: {exc}") from None
        self.actions = filled[np.asarray(valid, bool)]


def export_lerobot(
    episodes: Sequence[str | Path],
    spec: RobotSpec | str | Path,
    out: str | Path,
    *,
    fps: float | None = None,
    task: str | None = None,
    robot_type: str | None = None,
    encoder: str | None = None,
    crf: int = 30,
    progress: bool = True,
) -> dict[str, Any]:
    """Write ``episodes`` (episode folders or recording folders) as a v3.0 dataset in ``out``.

    ``fps``: the frame rate (default: the spec's control rate); ``task``: the task of an
    episode whose episode.yaml names none (default: the robot's name); ``encoder``: a PyAV
    video encoder (default: the first of libsvtav1, libaom-av1, libx264, libopenh264 there is).
    Returns a summary: ``episodes``, ``frames``, ``skipped`` ([(episode, reason)]), ``codec``, ``out``.
    """
    from tqdm import tqdm

    spec = spec if isinstance(spec, RobotSpec) else load_spec(spec)
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise FileExistsError(f"{out}: exists and is not empty; give a new folder")
    rate = float(fps or spec.rate_hz)
    if rate <= 0:
        raise ValueError(f"fps must be > 0, got {rate}")
    used, skipped_infos = select_episodes(list(episodes))
    skipped = [(str(i.path), reason) for i, reason in skipped_infos]
    video_encoder, codec = choose_encoder(encoder)
    stage = out.with_name(out.name + ".partial")
    shutil.rmtree(stage, ignore_errors=True)
    stage.mkdir(parents=True)
    cameras = sorted(spec.image_sensors, key=lambda s: s.view)
    writers: dict[str, VideoWriter] = {}
    video_files = {c.name: _Files(VIDEO_FILE_SIZE_MB * 1e6) for c in cameras}
    data_files = _Files(DATA_FILE_SIZE_MB * 1e6)
    data_rows: dict[str, list[np.ndarray]] = {k: [] for k in (STATE_KEY, ACTION_KEY, *INDEX_FEATURES)}
    data_bytes = 0
    row_bytes = 4 * (spec.state_dim + spec.action.dim) + 4 + 8 * 4
    frame_sizes: dict[str, tuple[int, int]] = {}
    tasks: list[str] = []
    episode_rows: list[dict[str, Any]] = []
    episode_stats: list[dict[str, dict[str, np.ndarray]]] = []
    total = 0
    try:
        for info in tqdm(used, desc="export", unit="episode", disable=not progress, file=sys.stderr):
            stats: Counter[str] = Counter()
            frames = _EpisodeFrames(info, spec, rate, stats)
            states, images = [], {c.name: _ImageStats() for c in cameras}
            written = 0
            # where the episode starts in each camera's current file; the frames of an episode that
            # fails half-way stay in the file, referenced by no episode (readers seek by timestamp)
            first_frame = {c.name: writers[c.name].frames if c.name in writers else 0 for c in cameras}
            try:
                for item in frames:
                    if not frame_sizes:  # the first frame fixes every camera's size
                        frame_sizes = {c.name: tuple(item.images[v].shape[:2]) for v, c in enumerate(cameras)}
                    for v, camera in enumerate(cameras):
                        rgb = item.images[v]
                        if tuple(rgb.shape[:2]) != frame_sizes[camera.name]:
                            raise DatasetError(f"{info.path}: camera {camera.name} frames are {rgb.shape[1]}x"
                                               f"{rgb.shape[0]}, the dataset's are {frame_sizes[camera.name][1]}x"
                                               f"{frame_sizes[camera.name][0]}")  # fmt: skip
                        if camera.name not in writers:
                            files = video_files[camera.name]
                            path = stage / VIDEO_PATH.format(video_key=image_key(camera.name),
                                                             chunk_index=files.chunk, file_index=files.file)
                            height, width = frame_sizes[camera.name]
                            writers[camera.name] = VideoWriter(path, video_encoder, width, height, rate, crf)
                        writers[camera.name].write(rgb)
                        images[camera.name].add(rgb)
                    states.append(np.asarray(item.state, np.float32))
                    written += 1
            except (DatasetError, BagError, LeRobotFormatError) as exc:
                skipped.append((str(info.path), str(exc)))
                logger.warning("skipping episode %s: %s", info.path, exc)
                continue
            if not written:
                skipped.append((str(info.path), f"no tick the policy node would have acted on ({dict(stats)})"))
                continue
            index = len(episode_rows)
            name = info.task or task or spec.name
            if name not in tasks:
                tasks.append(name)
            n = written
            frame_index = np.arange(n, dtype=np.int64)
            assert frames.actions is not None and len(frames.actions) == n
            columns = {STATE_KEY: np.stack(states), ACTION_KEY: frames.actions.astype(np.float32),
                       "timestamp": (frame_index / rate).astype(np.float32), "frame_index": frame_index,
                       "episode_index": np.full(n, index, np.int64), "index": total + frame_index,
                       "task_index": np.full(n, tasks.index(name), np.int64)}  # fmt: skip
            for key, values in columns.items():
                data_rows[key].append(values)
            row: dict[str, Any] = {
                "episode_index": index, "tasks": [name], "length": n,
                "data/chunk_index": data_files.chunk, "data/file_index": data_files.file,
                "dataset_from_index": total, "dataset_to_index": total + n,
            }  # fmt: skip
            ep_stats = {key: array_stats(values.reshape(n, -1)) for key, values in columns.items()}
            for camera in cameras:
                key = image_key(camera.name)
                start = first_frame[camera.name]
                files = video_files[camera.name]
                row.update({f"videos/{key}/chunk_index": files.chunk, f"videos/{key}/file_index": files.file,
                            f"videos/{key}/from_timestamp": start / rate,
                            f"videos/{key}/to_timestamp": (start + n) / rate})  # fmt: skip
                ep_stats[key] = images[camera.name].stats()
                if writers[camera.name].bytes > files.limit:
                    writers.pop(camera.name).close()
                    files.next()
            row.update({"meta/episodes/chunk_index": 0, "meta/episodes/file_index": 0})
            row.update({f"stats/{key}/{stat}": np.asarray(v).tolist() for key, part in ep_stats.items()
                        for stat, v in part.items()})  # fmt: skip
            episode_rows.append(row)
            episode_stats.append(ep_stats)
            total += n
            data_bytes += n * row_bytes
            if data_bytes > data_files.limit:
                _flush_data(stage, data_files, data_rows, spec, rate, frame_sizes, codec)
                data_bytes = 0
        for writer in writers.values():
            writer.close()
        writers.clear()
        if not episode_rows:
            raise ValueError(f"no episode could be exported: {skipped or 'no episodes given'}")
        if data_rows[STATE_KEY]:
            _flush_data(stage, data_files, data_rows, spec, rate, frame_sizes, codec)
        _write_meta(stage, spec, rate, frame_sizes, codec, tasks, episode_rows, episode_stats, total,
                    robot_type or spec.name)
    except BaseException:
        for writer in writers.values():
            try:
                writer.close()
            except Exception:  # the original error is the one to report
                pass
        shutil.rmtree(stage, ignore_errors=True)
        raise
    if out.exists():
        out.rmdir()  # empty (checked above)
    stage.rename(out)
    return {"out": str(out), "episodes": len(episode_rows), "frames": total, "skipped": skipped, "codec": codec,
            "encoder": video_encoder, "fps": rate}


def _flush_data(stage: Path, files: _Files, rows: dict[str, list[np.ndarray]], spec: RobotSpec, fps: float,
                frame_sizes: dict[str, tuple[int, int]], codec: str) -> None:  # fmt: skip
    features = spec_features(spec, frame_sizes, codec, fps)
    path = stage / DATA_PATH.format(chunk_index=files.chunk, file_index=files.file)
    _write_parquet(_data_table(rows, spec), path, features)
    for values in rows.values():
        values.clear()
    files.next()


def _write_meta(stage: Path, spec: RobotSpec, fps: float, frame_sizes: dict[str, tuple[int, int]], codec: str,
                tasks: list[str], episode_rows: list[dict[str, Any]], episode_stats: list[dict[str, Any]],
                total: int, robot_type: str) -> None:  # fmt: skip
    import pyarrow as pa

    features = spec_features(spec, frame_sizes, codec, fps)
    _write_parquet(pa.Table.from_pylist(episode_rows), stage / EPISODES_PATH.format(chunk_index=0, file_index=0))
    _write_parquet(_tasks_table(tasks), stage / TASKS_PATH)
    (stage / STATS_PATH).write_text(json.dumps(json_stats(aggregate_stats(episode_stats)), indent=2) + "\n")
    info = {
        "codebase_version": CODEBASE_VERSION,
        "robot_type": robot_type,
        "total_episodes": len(episode_rows),
        "total_frames": total,
        "total_tasks": len(tasks),
        "chunks_size": CHUNKS_SIZE,
        "data_files_size_in_mb": DATA_FILE_SIZE_MB,
        "video_files_size_in_mb": VIDEO_FILE_SIZE_MB,
        "fps": fps,
        "splits": {"train": f"0:{len(episode_rows)}"},
        "data_path": DATA_PATH,
        "video_path": VIDEO_PATH if frame_sizes else None,
        "features": features,
    }
    (stage / INFO_PATH).write_text(json.dumps(info, indent=4) + "\n")


# -- command line ------------------------------------------------------------------------------------

def build_arg_parser(prog: str = "hpt-ros export-lerobot") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Write rosbag2 episodes as a LeRobotDataset v3.0, "
                                     "resampled at the control rate as training reads them.")  # fmt: skip
    parser.add_argument("episodes", nargs="+", metavar="EPISODES", help="episode folders or recording folders")
    parser.add_argument("--robot", required=True, metavar="FILE", help="robot spec YAML (or a shipped name)")
    parser.add_argument("--out", required=True, metavar="DIR", help="the dataset folder (new or empty)")
    parser.add_argument("--fps", type=float, default=0.0, help="frame rate (default: the spec's control rate)")
    parser.add_argument("--task", default="", help="task of episodes whose episode.yaml names none")
    parser.add_argument("--robot-type", default="", help="info.json robot_type (default: the spec's robot name)")
    parser.add_argument("--encoder", default="", help="PyAV video encoder (default: libsvtav1, libaom-av1, libx264 "
                        "or libopenh264, the first this PyAV has)")  # fmt: skip
    parser.add_argument("--crf", type=int, default=30, help="video quality: lower is better and bigger (default 30)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def cli(argv: Sequence[str], prog: str = "hpt-ros export-lerobot") -> int:
    """Parse ``argv`` and export; returns the exit status (see the module docstring)."""
    args = build_arg_parser(prog).parse_args(list(argv))
    from hpt_ros.spec import SpecError

    try:
        summary = export_lerobot(args.episodes, args.robot, args.out, fps=args.fps or None, task=args.task or None,
                                 robot_type=args.robot_type or None, encoder=args.encoder or None, crf=args.crf,
                                 progress=not args.no_progress)  # fmt: skip
    except (SpecError, ValueError, FileNotFoundError, FileExistsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for episode, reason in summary["skipped"]:
        print(f"  skipped {episode}: {reason}")
    print(f"{summary['episodes']} episode(s), {summary['frames']} frames at {summary['fps']:g} fps "
          f"({summary['codec']} video via {summary['encoder']}) -> {summary['out']}")  # fmt: skip
    return 1 if summary["skipped"] else 0
