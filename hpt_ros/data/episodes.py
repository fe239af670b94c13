"""Episode folders: one rosbag2 bag per demonstration plus its ``episode.yaml``.

Layout of a recording directory::

    demos/
      episode_0000/            a rosbag2 bag (metadata.yaml + episode_0000.mcap)
        episode.yaml           task, operator, success, notes, spec hash, counts, ...
      episode_0001/
        ...

``episode.yaml`` is written when the episode starts (``complete: false``) and rewritten
when it closes, so a bag whose recorder was killed still says what it was; ``repair_bag``
then marks it ``recovered: true``.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "EPISODE_FILE",
    "EpisodeInfo",
    "episode_path",
    "list_episodes",
    "next_episode_index",
    "read_episode",
    "read_episode_yaml",
    "write_episode_yaml",
]

EPISODE_FILE = "episode.yaml"
_NAME = re.compile(r"^episode_(\d+)$")


@dataclass(frozen=True)
class EpisodeInfo:
    """One episode folder as found on disk.

    ``needs_repair`` is true when its MCAP file has no metadata.yaml beside it (the
    recorder did not close it): run ``repair_bag(path)``.
    """

    path: Path
    bag_files: tuple[Path, ...]
    episode_index: int | None
    task: str | None
    operator: str | None
    success: bool | None
    notes: str | None
    spec_hash: str | None
    start_time: str | None
    duration_s: float | None
    message_counts: dict[str, int]
    complete: bool
    recovered: bool
    needs_repair: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


def episode_path(root: str | Path, index: int) -> Path:
    """The folder of episode ``index`` under ``root``: ``root/episode_0007``."""
    if index < 0:
        raise ValueError(f"episode index must be >= 0, got {index}")
    return Path(root) / f"episode_{index:04d}"


def read_episode_yaml(folder: str | Path) -> dict[str, Any]:
    """The mapping in ``folder/episode.yaml`` ({} when absent); ValueError when malformed."""
    file = Path(folder) / EPISODE_FILE
    if not file.exists():
        return {}
    try:
        doc = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as err:
        raise ValueError(f"{file}: unreadable: {err}") from err
    if doc is None:
        return {}
    if not isinstance(doc, dict):
        raise ValueError(f"{file}: expected a mapping, found {type(doc).__name__}")
    return doc


def write_episode_yaml(folder: str | Path, doc: Mapping[str, Any], *, fsync: bool = False) -> Path:
    """Write ``folder/episode.yaml`` atomically (temporary file, then rename)."""
    folder = Path(folder)
    text = yaml.safe_dump(dict(doc), sort_keys=False, allow_unicode=True)
    fd, tmp = tempfile.mkstemp(dir=folder, prefix=".episode.", suffix=".yaml.tmp")
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes it 0600
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
            if fsync:
                out.flush()
                os.fsync(out.fileno())
        target = folder / EPISODE_FILE
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def read_episode(folder: str | Path) -> EpisodeInfo:
    """The ``EpisodeInfo`` of one folder; FileNotFoundError when it holds no episode."""
    info = _info(Path(folder))
    if info is None:
        raise FileNotFoundError(f"{folder}: no bag file, metadata.yaml or {EPISODE_FILE}")
    return info


def _info(folder: Path) -> EpisodeInfo | None:
    if not folder.is_dir():
        return None
    bag_files = tuple(sorted(p for p in folder.iterdir() if p.suffix in (".mcap", ".db3")))
    has_meta = (folder / "metadata.yaml").exists()
    has_episode = (folder / EPISODE_FILE).exists()
    if not (bag_files or has_meta or has_episode):
        return None
    error = None
    try:
        doc = read_episode_yaml(folder)
    except ValueError as err:
        doc, error = {}, str(err)
    index = doc.get("episode_index")
    if not isinstance(index, int):
        match = _NAME.match(folder.name)
        index = int(match.group(1)) if match else None
    counts = doc.get("message_counts")
    duration = doc.get("duration_s")
    success = doc.get("success")
    return EpisodeInfo(
        path=folder,
        bag_files=bag_files,
        episode_index=index,
        task=_str(doc.get("task")),
        operator=_str(doc.get("operator")),
        success=success if isinstance(success, bool) else None,
        notes=_str(doc.get("notes")),
        spec_hash=_str(doc.get("spec_hash")),
        start_time=_str(doc.get("start_time")),
        duration_s=float(duration) if isinstance(duration, (int, float)) else None,
        message_counts=dict(counts) if isinstance(counts, dict) else {},
        complete=bool(doc.get("complete", has_meta)) and has_meta,
        recovered=bool(doc.get("recovered", False)),
        needs_repair=bool(bag_files) and not has_meta,
        metadata=doc,
        error=error,
    )


def _str(value: object) -> str | None:
    return None if value is None else str(value)


def list_episodes(root: str | Path) -> list[EpisodeInfo]:
    """Every episode folder directly under ``root`` (none when ``root`` does not exist).

    A folder counts when it holds a bag file, a metadata.yaml or an episode.yaml. Sorted
    by episode index (folders without one last), then by name.
    """
    root = Path(root)
    if not root.is_dir():
        return []
    found = [info for p in root.iterdir() if p.is_dir() and (info := _info(p)) is not None]
    return sorted(found, key=lambda e: (e.episode_index is None, e.episode_index or 0, e.path.name))


def next_episode_index(root: str | Path) -> int:
    """One more than the highest episode index under ``root`` (from episode.yaml or the
    ``episode_NNNN`` folder name, including folders being written or needing repair); 0 if none.
    """
    root = Path(root)
    if not root.is_dir():
        return 0
    highest = -1
    for folder in root.iterdir():
        if not folder.is_dir():
            continue
        if match := _NAME.match(folder.name):
            highest = max(highest, int(match.group(1)))
        try:
            index = read_episode_yaml(folder).get("episode_index")
        except ValueError:
            continue
        if isinstance(index, int):
            highest = max(highest, index)
    return highest + 1
