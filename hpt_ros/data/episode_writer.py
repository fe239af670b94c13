"""Write one demonstration episode as a rosbag2 bag (mcap storage) that survives SIGKILL.

``EpisodeWriter(path, topics, metadata)`` checks everything it can before the episode
starts (topic types known, folder absent, parent writable, enough free disk space), then
records raw CDR messages as they come from a DDS reader (``write(topic, stamp, cdr)``).
The bag is written with ``rosbags.rosbag2.Writer`` (rosbag2 layout, message definitions
embedded as MCAP schemas from a ROS 2 typestore, Humble by default), so Foxglove and
``ros2 bag play`` read it as is.

Crash safety. rosbags' MCAP writer keeps the current chunk in memory until it exceeds
1 MiB, and writes through a buffered file, so a killed recorder could lose minutes of a
low-rate stream and, before the first chunk, everything including the schemas. Here a
background thread closes the pending chunk and flushes the file every
``flush_interval_s`` (0.5 s by default), and optionally fsyncs it (outside the lock, so
``write`` never waits for the disk). Bytes handed to the kernel survive the death of the
process, so after SIGKILL at most the last flush interval is missing; ``repair_bag`` makes
the rest readable by every tool. ``fsync`` also covers power loss.

``close()`` writes the MCAP summary, metadata.yaml (rosbag2 version 8 by default: Humble
reads its QoS text, which version 9 writes as a YAML list) and the final ``episode.yaml``.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from pathlib import Path
from types import TracebackType
from typing import Any, Literal

import yaml
from rosbags.interfaces import Connection, Qos
from rosbags.rosbag2 import StoragePlugin, Writer, WriterError
from rosbags.rosbag2.storage_mcap import McapWriter
from rosbags.typesys.store import Typestore

from .episodes import EPISODE_FILE, EpisodeInfo, read_episode, write_episode_yaml
from .errors import BagTopicError, BagWriteError, EpisodeExistsError, InsufficientSpaceError
from .typestores import distro_typestore, normalize_msgtype

__all__ = ["DEFAULT_MIN_FREE_BYTES", "EpisodeWriter", "estimate_episode_bytes"]

DEFAULT_MIN_FREE_BYTES = 1 << 30
"""Free space an episode must find on its disk unless told otherwise (1 GiB)."""

_USER_KEYS = ("task", "episode_index", "operator", "success", "notes", "spec_hash")


def estimate_episode_bytes(
    streams: Mapping[str, tuple[float, int]], duration_s: float, *, margin: float = 1.2
) -> int:
    """Bytes an episode needs: ``streams`` maps topic -> (rate in Hz, bytes per message).

    Each message also costs ~60 bytes of MCAP framing and index; ``margin`` covers the rest.
    Example: two 640x480 rgb8 cameras at 30 Hz for 120 s -> about 8 GB.
    """
    per_s = sum(rate * (size + 60) for rate, size in streams.values())
    return int(per_s * duration_s * margin) + (1 << 20)


def _nearest_existing(path: Path) -> Path:
    for candidate in (path, *path.parents):
        if candidate.exists():
            return candidate
    return Path(".")  # pragma: no cover - the root always exists


class EpisodeWriter:
    """Writer of one episode bag. Thread-safe: ``write`` may be called from any thread.

    ``topics`` maps topic -> message type ('pkg/msg/Name' or 'pkg/Name'); ``metadata``
    holds task, episode_index, operator, success, notes, spec_hash and any other plain
    YAML values for episode.yaml.
    """

    def __init__(
        self,
        path: str | Path,
        topics: Mapping[str, str],
        metadata: Mapping[str, Any] | None = None,
        *,
        min_free_bytes: int = DEFAULT_MIN_FREE_BYTES,
        flush_interval_s: float | None = 0.5,
        fsync: bool = True,
        distro: str = "humble",
        typestore: Typestore | None = None,
        qos: Mapping[str, Sequence[Qos]] | None = None,
        rosbag2_version: Literal[8, 9] = 8,
    ):
        self.path = Path(path)
        self.flush_interval_s = flush_interval_s
        self.fsync = fsync
        self.metadata: dict[str, Any] = dict(metadata or {})
        self._check_metadata()
        if flush_interval_s is not None and flush_interval_s <= 0:
            raise ValueError(f"flush_interval_s must be > 0 or None, got {flush_interval_s}")
        if rosbag2_version not in (8, 9):
            raise ValueError(f"rosbag2_version must be 8 or 9, got {rosbag2_version}")
        self.rosbag2_version = rosbag2_version
        store = typestore if typestore is not None else distro_typestore(distro)
        self.topics = self._resolve_topics(topics, store, distro)
        self._preflight(min_free_bytes)

        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._closed = False
        self.counts: dict[str, int] = {t: 0 for t in self.topics}
        self.first_ns: int | None = None
        self.last_ns: int | None = None
        self.started = datetime.now(timezone.utc)

        self._writer = Writer(self.path, version=rosbag2_version, storage_plugin=StoragePlugin.MCAP)
        for key in ("task", "episode_index", "operator", "spec_hash"):
            if self.metadata.get(key) is not None:
                self._writer.set_custom_data(f"hpt_ros.{key}", str(self.metadata[key]))
        self._writer.set_custom_data("hpt_ros.episode_file", EPISODE_FILE)
        try:
            self._writer.open()
        except (WriterError, OSError) as err:
            raise BagWriteError(self.path, f"cannot create the episode: {err}") from err
        try:
            storage = self._writer.storage
            if not isinstance(storage, McapWriter) or not all(
                hasattr(storage, name) for name in ("close_chunk", "chunk", "bio")
            ):
                raise BagWriteError(self.path, "rosbags' McapWriter changed: periodic flushing unavailable")
            self._storage: McapWriter = storage
            self.bag_file = Path(self._storage.path)
            self._connections: dict[str, Connection] = {}
            for topic, msgtype in self.topics.items():
                msgdef = store.generate_msgdef(msgtype, ros_version=2)[0]
                self._connections[topic] = self._writer.add_connection(
                    topic,
                    msgtype,
                    msgdef=msgdef,
                    rihs01=store.hash_rihs01(msgtype),
                    offered_qos_profiles=list((qos or {}).get(topic, ())),
                )
            self._storage.bio.flush()
            write_episode_yaml(self.path, self._episode_doc(complete=False), fsync=fsync)
        except BaseException:
            self._writer.abort()
            shutil.rmtree(self.path, ignore_errors=True)
            raise
        if flush_interval_s is not None:
            self._thread = threading.Thread(target=self._flush_loop, name=f"flush {self.path.name}", daemon=True)
            self._thread.start()

    # --------------------------------------------------------------- preflight
    def _check_metadata(self) -> None:
        try:
            yaml.safe_dump(self.metadata)
        except yaml.YAMLError as err:
            raise BagWriteError(self.path, f"episode metadata must be plain YAML values: {err}") from err
        index = self.metadata.get("episode_index")
        if index is not None and (not isinstance(index, int) or isinstance(index, bool) or index < 0):
            raise BagWriteError(self.path, f"episode_index must be an int >= 0, got {index!r}")
        success = self.metadata.get("success")
        if success is not None and not isinstance(success, bool):
            raise BagWriteError(self.path, f"success must be true, false or null, got {success!r}")

    def _resolve_topics(self, topics: Mapping[str, str], store: Typestore, distro: str) -> dict[str, str]:
        if not topics:
            raise BagWriteError(self.path, "an episode needs at least one topic")
        resolved: dict[str, str] = {}
        for topic, msgtype in topics.items():
            if not topic.startswith("/"):
                raise BagTopicError(self.path, "topic names in a bag must be absolute ('/...')", topic=topic)
            try:
                name = normalize_msgtype(msgtype)
            except ValueError as err:
                raise BagTopicError(self.path, str(err), topic=topic) from err
            if name not in store.fielddefs:
                raise BagTopicError(
                    self.path,
                    f"message type {name} is not in the typestore (ROS 2 {distro}); pass typestore=",
                    topic=topic,
                )
            resolved[topic] = name
        return resolved

    def _preflight(self, min_free_bytes: int) -> None:
        if self.path.exists() or self.path.is_symlink():
            raise EpisodeExistsError(self.path, "episode folder already exists; episodes are never overwritten")
        parent = _nearest_existing(self.path.parent)
        if not parent.is_dir():
            raise BagWriteError(self.path, f"{parent} is not a directory")
        try:
            with tempfile.TemporaryFile(dir=parent):
                pass
        except OSError as err:
            raise BagWriteError(self.path, f"directory {parent} is not writable: {err.strerror or err}") from err
        free = shutil.disk_usage(parent).free
        if free < min_free_bytes:
            raise InsufficientSpaceError(
                self.path,
                f"only {free / 1e9:.2f} GB free on the disk of {parent}, "
                f"the episode needs {min_free_bytes / 1e9:.2f} GB (min_free_bytes)",
            )

    # ----------------------------------------------------------------- writing
    def write(self, topic: str, timestamp_ns: int, cdr: bytes | bytearray | memoryview) -> None:
        """Record one message: raw CDR bytes with their 4-byte encapsulation header."""
        conn = self._connections.get(topic)
        if conn is None:
            raise BagTopicError(self.path, f"not one of the episode's topics {sorted(self.topics)}", topic=topic)
        if len(cdr) < 4 or cdr[0] != 0 or cdr[1] > 0x0B:
            raise BagWriteError(self.path, "data is not CDR (4-byte encapsulation header missing)", topic=topic)
        if not isinstance(timestamp_ns, int) or timestamp_ns < 0:
            raise BagWriteError(self.path, f"timestamp_ns must be an int >= 0, got {timestamp_ns!r}", topic=topic)
        with self._lock:
            if self._closed:
                raise BagWriteError(self.path, "episode already closed", topic=topic)
            if self._error is not None:
                raise BagWriteError(self.path, f"writing failed earlier: {self._error}", topic=topic) from self._error
            try:
                self._writer.write(conn, timestamp_ns, bytes(cdr) if isinstance(cdr, bytearray) else cdr)
            except (OSError, WriterError) as err:
                self._error = err
                raise BagWriteError(self.path, f"write failed: {err}", topic=topic) from err
            self.counts[topic] += 1
            if self.first_ns is None or timestamp_ns < self.first_ns:
                self.first_ns = timestamp_ns
            if self.last_ns is None or timestamp_ns > self.last_ns:
                self.last_ns = timestamp_ns

    def flush(self) -> None:
        """Put every message written so far into the file (and fsync it if configured)."""
        with self._lock:
            if self._closed:
                return
            if self._error is not None:
                raise BagWriteError(self.path, f"writing failed earlier: {self._error}") from self._error
            try:
                self._flush_locked()
            except OSError as err:  # disk full: the episode cannot go on, and says so like a failed write
                self._error = err
                raise BagWriteError(self.path, f"write failed: {err}") from err
            fd = self._storage.bio.fileno()
        if self.fsync:
            try:
                os.fsync(fd)
            except OSError as err:
                with self._lock:
                    self._error = err
                raise BagWriteError(self.path, f"write failed: {err}") from err

    def _flush_locked(self) -> None:
        storage = self._storage
        if storage.chunk.msgs:  # schema/channel records wait for the first message
            storage.close_chunk()
        storage.bio.flush()

    def _flush_loop(self) -> None:
        assert self.flush_interval_s is not None
        while not self._stop.wait(self.flush_interval_s):
            try:
                self.flush()
            except BagWriteError:  # disk full: recorded, the next write reports it
                return
            except (OSError, ValueError) as err:  # file closed under us
                with self._lock:
                    if not self._closed:
                        self._error = err
                return

    def _stop_thread(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        self._thread = None

    # --------------------------------------------------------------- finishing
    def _episode_doc(self, *, complete: bool) -> dict[str, Any]:
        doc: dict[str, Any] = {"format": "hpt_ros.episode", "format_version": 1}
        doc.update({key: self.metadata.get(key) for key in _USER_KEYS})
        doc.update({k: v for k, v in self.metadata.items() if k not in doc})
        first, last = self.first_ns, self.last_ns
        doc.update(
            {
                "start_time": self.started.isoformat(timespec="milliseconds").replace("+00:00", "Z"),
                "start_ns": first,
                "end_ns": last,
                "duration_s": (last - first) / 1e9 if first is not None and last is not None else 0.0,
                "message_count": sum(self.counts.values()),
                "message_counts": dict(self.counts),
                "topics": dict(self.topics),
                "bag": {"storage": "mcap", "file": self.bag_file.name, "rosbag2_version": self.rosbag2_version},
                "complete": complete,
                "recovered": False,
            }
        )
        return doc

    def close(self, *, success: bool | None = None, notes: str | None = None, **metadata: Any) -> EpisodeInfo:
        """Finish the bag: MCAP summary, metadata.yaml, final episode.yaml. Idempotent.

        ``success``, ``notes`` and other keyword values update the episode metadata (the
        operator often decides success only after the episode).
        """
        if success is not None:
            metadata["success"] = success
        if notes is not None:
            metadata["notes"] = notes
        self.metadata.update(metadata)
        self._check_metadata()
        self._stop_thread()
        with self._lock:
            if not self._closed:
                self._closed = True
                try:
                    self._writer.close()
                except (OSError, WriterError) as err:
                    raise BagWriteError(self.path, f"closing the bag failed: {err}") from err
        if self.fsync:
            for file in (self.bag_file, self.path / "metadata.yaml"):
                with file.open("rb") as f:
                    os.fsync(f.fileno())
        write_episode_yaml(self.path, self._episode_doc(complete=True), fsync=self.fsync)
        return read_episode(self.path)

    def discard(self) -> None:
        """Stop recording and delete the episode folder (works before or after ``close``)."""
        self._stop_thread()
        with self._lock:
            if not self._closed:
                self._closed = True
                self._writer.abort()
        shutil.rmtree(self.path, ignore_errors=True)

    @property
    def closed(self) -> bool:
        """True after ``close`` or ``discard``."""
        return self._closed

    def __enter__(self) -> EpisodeWriter:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self._closed:
            return
        if exc is None:
            self.close()
        else:  # keep what was recorded, and say why it ended
            self.close(ended_by_error=f"{exc_type.__name__ if exc_type else 'error'}: {exc}")
