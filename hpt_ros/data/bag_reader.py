"""Read rosbag2 bags: directories (metadata.yaml versions 1-9) or bare ``.mcap`` / ``.db3`` files.

``open_bag(path)`` returns a ``BagReader``. Each storage file is read with
``rosbags.rosbag2.Reader`` in its bare-file mode, which takes topics, types and message
definitions from the file itself. metadata.yaml only says which files belong to the bag
and how they are compressed: rosbags' directory reader matches the connections of the
metadata against those of the storage *including their QoS text*, and returns nothing
when the two disagree (as in the official rosbag2 talker test bags). Reading the storage
directly is immune to that.

A truncated or corrupt MCAP file (writer killed) raises ``BagTruncatedError``; with
``recover=True`` it is scanned front to back (``mcap_scan``) and every complete message
is returned.

Messages are deserialised with the definitions embedded in the bag when they work, else
with a ROS 2 distribution store of ``rosbags`` (``distro=``). The results are rosbags
dataclasses, which carry ROS 2 field names (``msg.header.stamp.sec``, ``msg.data``).
"""

from __future__ import annotations

import heapq
import logging
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import ExitStack, suppress
from dataclasses import dataclass, replace
from pathlib import Path, PurePath
from types import TracebackType
from typing import Any, NamedTuple

import yaml
from rosbags.interfaces import MessageDefinitionFormat
from rosbags.rosbag2 import Reader
from rosbags.typesys.store import Typestore

from .errors import BagOpenError, BagTopicError, BagTruncatedError
from .mcap_scan import MCAP_MAGIC, McapScan, scan_mcap
from .typestores import (
    DISTROS,
    distro_typestore,
    normalize_msgtype,
    same_msgtype,
    typestore_from_definition,
    zstd_module,
)

__all__ = ["BagMessage", "BagReader", "TopicInfo", "open_bag"]

_log = logging.getLogger(__name__)

_STORAGE_SUFFIXES = (".mcap", ".db3")
_DEF_ENCODING = {
    MessageDefinitionFormat.MSG: "ros2msg",
    MessageDefinitionFormat.IDL: "ros2idl",
    MessageDefinitionFormat.NONE: "",
}


@dataclass(frozen=True)
class TopicInfo:
    """One topic of a bag: its message type, message count and serialisation format."""

    msgtype: str
    count: int
    serialization_format: str


class BagMessage(NamedTuple):
    """One raw message: ``rawdata`` is CDR with its 4-byte encapsulation header."""

    topic: str
    msgtype: str
    timestamp_ns: int
    rawdata: bytes | memoryview


@dataclass(frozen=True)
class _Connection:
    topic: str
    msgtype: str
    count: int
    serialization_format: str
    def_encoding: str
    def_text: str


class _RosbagsFile:
    """One storage file read by ``rosbags.rosbag2.Reader`` (bare-file mode)."""

    def __init__(self, path: Path, display: Path):
        self.path = path
        self.display = display
        self.reader = Reader(path)
        self.reader.open()
        self.connections = [
            _Connection(
                c.topic,
                _norm(c.msgtype),
                c.msgcount,
                getattr(c.ext, "serialization_format", "cdr"),
                _DEF_ENCODING.get(c.msgdef.format, ""),
                c.msgdef.data,
            )
            for c in self.reader.connections
        ]
        count = self.reader.message_count
        self.start_ns: int | None = self.reader.start_time if count else None
        self.end_ns: int | None = self.reader.end_time - 1 if count else None
        self.problem: str | None = None

    def messages(self, topics: set[str] | None) -> Iterator[tuple[int, str, str, bytes]]:
        conns = [c for c in self.reader.connections if topics is None or c.topic in topics]
        if not conns:
            return
        try:
            for conn, timestamp, data in self.reader.messages(connections=conns):
                yield timestamp, conn.topic, _norm(conn.msgtype), data
        except Exception as err:  # rosbags raises ReaderError, struct.error, OverflowError, ...
            raise BagTruncatedError(
                self.display, f"{self.path.name} is corrupt ({err!r}); repair_bag() keeps the messages before the damage"
            ) from err

    def close(self) -> None:
        with suppress(Exception):
            self.reader.close()


class _ScannedFile:
    """One MCAP file read by a front-to-back scan (recovery mode)."""

    def __init__(self, scan: McapScan):
        self.scan = scan
        self.path = scan.path
        self.connections = [
            _Connection(
                ch.topic,
                _norm(scan.msgtype(ch.id)),
                scan.counts.get(ch.id, 0),
                ch.message_encoding,
                scan.schemas[ch.schema_id].encoding if ch.schema_id in scan.schemas else "",
                scan.schemas[ch.schema_id].data.decode("utf-8", "replace") if ch.schema_id in scan.schemas else "",
            )
            for ch in scan.channels.values()
        ]
        self.start_ns = scan.start_ns
        self.end_ns = scan.end_ns
        self.problem = None if scan.complete else scan.problem

    def messages(self, topics: set[str] | None) -> Iterator[tuple[int, str, str, bytes]]:
        channels = self.scan.channels
        ids = [ch.id for ch in channels.values() if topics is None or ch.topic in topics]
        if not ids:
            return
        types = {i: _norm(self.scan.msgtype(i)) for i in ids}
        for channel_id, timestamp, data in self.scan.messages(ids):
            yield timestamp, channels[channel_id].topic, types[channel_id], data

    def close(self) -> None:
        pass


def _norm(msgtype: str) -> str:
    try:
        return normalize_msgtype(msgtype)
    except ValueError:
        return msgtype


class BagReader:
    """An open rosbag2 bag. Use ``open_bag(path)``; close it (or use ``with``) when done."""

    def __init__(self, path: str | Path, *, distro: str | None = None, recover: bool = False):
        self.path = Path(path)
        self.recover = recover
        self.metadata_version: int | None = None
        self.storage_identifier = ""
        self.files: list[Path] = []
        self.problems: list[str] = []
        self._metadata: dict[str, Any] = {}
        self._compression_mode = ""
        self._stack = ExitStack()
        self._sources: list[_RosbagsFile | _ScannedFile] = []
        self._embedded: dict[str, tuple[str, str]] = {}
        self._stores: dict[str, Typestore | None] = {}
        self._embedded_bad: set[str] = set()
        try:
            self._open()
        except BaseException:
            self.close()
            raise
        auto = str(self._metadata.get("ros_distro") or "").lower()
        self.distro = (distro or (auto if auto in DISTROS else "humble")).lower()
        distro_typestore(self.distro)  # unknown distro: ValueError now, not on first message

    # ----------------------------------------------------------------- opening
    def _open(self) -> None:
        if not self.path.exists():
            raise BagOpenError(self.path, "no such file or directory")
        if self.path.is_dir():
            files = self._directory_files()
        elif self.path.suffix in _STORAGE_SUFFIXES:
            files = [self.path]
            self.storage_identifier = "mcap" if self.path.suffix == ".mcap" else "sqlite3"
        else:
            raise BagOpenError(
                self.path, "not a rosbag2 directory, .mcap or .db3 file (unknown suffix)"
            )
        self.files = files
        for file in files:
            self._sources.append(self._open_file(self._decompressed(file)))
        for source in self._sources:
            if source.problem:
                self.problems.append(f"{source.path.name}: {source.problem}")
            for conn in source.connections:
                if conn.def_text and conn.msgtype not in self._embedded:
                    self._embedded[conn.msgtype] = (conn.def_encoding, conn.def_text)

    def _directory_files(self) -> list[Path]:
        meta_path = self.path / "metadata.yaml"
        if not meta_path.exists():
            found = sorted(p for p in self.path.iterdir() if p.suffix in _STORAGE_SUFFIXES)
            if not found:
                raise BagOpenError(self.path, "no metadata.yaml and no .mcap or .db3 file")
            kinds = {p.suffix for p in found}
            self.storage_identifier = "mcap" if kinds == {".mcap"} else "sqlite3" if kinds == {".db3"} else "mixed"
            return found
        try:
            doc = yaml.safe_load(meta_path.read_text(encoding="utf-8"))
            info = doc["rosbag2_bagfile_information"]
            self.metadata_version = int(info["version"])
            self.storage_identifier = str(info.get("storage_identifier", ""))
            names = [PurePath(str(x)).name for x in info["relative_file_paths"]]
        except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError) as err:
            raise BagOpenError(self.path, f"unreadable metadata.yaml: {err!r}") from err
        if self.metadata_version > 9:
            _log.warning("%s: metadata.yaml version %d is newer than 9; reading anyway",
                         self.path, self.metadata_version)
        self._metadata = info
        mode = str(info.get("compression_mode") or "").lower()
        self._compression_mode = "" if mode == "none" else mode
        if self._compression_mode and str(info.get("compression_format") or "zstd") != "zstd":
            raise BagOpenError(self.path, f"unsupported compression {info.get('compression_format')!r}")
        files = [self.path / name for name in names]
        if missing := [f.name for f in files if not f.exists()]:
            raise BagOpenError(self.path, f"storage files listed in metadata.yaml are missing: {missing}")
        if not files:
            raise BagOpenError(self.path, "metadata.yaml lists no storage files")
        return files

    def _decompressed(self, file: Path) -> Path:
        """The storage file itself, or (file compression mode) a decompressed temporary copy."""
        if self._compression_mode != "file":
            return file
        tmpdir = Path(self._stack.enter_context(tempfile.TemporaryDirectory(prefix="hpt_bag_")))
        target = tmpdir / (file.stem if file.suffix == ".zstd" else file.name)
        try:
            with file.open("rb") as src, zstd_module().open(src, "rb") as inp, target.open("wb") as out:
                while block := inp.read(1 << 20):
                    out.write(block)
        except Exception as err:
            raise BagTruncatedError(self.path, f"cannot decompress {file.name}: {err}") from err
        return target

    def _open_file(self, file: Path) -> _RosbagsFile | _ScannedFile:
        try:
            return _RosbagsFile(file, self.path)
        except PermissionError as err:
            raise BagOpenError(self.path, f"cannot read {file.name}: {err.strerror}") from err
        except Exception as err:  # rosbags raises ReaderError, OSError, struct.error, ... on damage
            error = err
        if file.suffix != ".mcap":
            if "missing tables" in str(error) or "not a database" in str(error):
                raise BagOpenError(self.path, f"{file.name} is not a rosbag2 sqlite3 file: {error}") from error
            raise BagTruncatedError(self.path, f"{file.name} is truncated or corrupt: {error}") from error
        with file.open("rb") as f:
            if f.read(8) != MCAP_MAGIC:
                raise BagOpenError(self.path, f"{file.name} is not an MCAP file (bad magic)") from error
        if not self.recover:
            raise BagTruncatedError(
                self.path,
                f"{file} is truncated or corrupt ({error}); its writer was probably killed. "
                "open_bag(..., recover=True) reads every complete message, repair_bag() rewrites it",
            ) from error
        scanned = _ScannedFile(scan_mcap(file))
        _log.warning("%s: recovered %d complete messages from %s (%s)", self.path,
                     scanned.scan.message_count, file.name, scanned.problem)
        return scanned

    def close(self) -> None:
        """Close every storage file."""
        for source in self._sources:
            source.close()
        self._sources = []
        self._stack.close()

    def __enter__(self) -> BagReader:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ------------------------------------------------------------- information
    @property
    def recovered(self) -> bool:
        """True when a storage file was incomplete and read in recovery mode."""
        return any(isinstance(s, _ScannedFile) and s.problem for s in self._sources)

    @property
    def topics(self) -> dict[str, TopicInfo]:
        """Topics of the storage files (plus topics only metadata.yaml names, with count 0)."""
        topics: dict[str, TopicInfo] = {}
        for source in self._sources:
            for c in source.connections:
                have = topics.get(c.topic)
                if have is None:
                    topics[c.topic] = TopicInfo(c.msgtype, c.count, c.serialization_format)
                else:
                    if not same_msgtype(have.msgtype, c.msgtype):
                        _log.warning("%s: topic %s has types %s and %s", self.path, c.topic, have.msgtype, c.msgtype)
                    topics[c.topic] = replace(have, count=have.count + c.count)
        for entry in self._metadata.get("topics_with_message_count") or []:
            meta = entry.get("topic_metadata") or {}
            name = meta.get("name")
            if name and name not in topics:
                topics[name] = TopicInfo(_norm(str(meta.get("type", ""))), 0,
                                         str(meta.get("serialization_format", "cdr")))
        return topics

    @property
    def message_count(self) -> int:
        """Number of messages in the storage files."""
        return sum(c.count for s in self._sources for c in s.connections)

    @property
    def start_ns(self) -> int:
        """Timestamp of the earliest message (0 for a bag without messages)."""
        starts = [s.start_ns for s in self._sources if s.start_ns is not None]
        return min(starts) if starts else 0

    @property
    def end_ns(self) -> int:
        """Timestamp of the latest message (0 for a bag without messages)."""
        ends = [s.end_ns for s in self._sources if s.end_ns is not None]
        return max(ends) if ends else 0

    @property
    def duration_s(self) -> float:
        """Seconds between the earliest and the latest message."""
        return (self.end_ns - self.start_ns) / 1e9

    def require_topic(self, topic: str, expected_msgtype: str) -> TopicInfo:
        """The topic's info; ``BagTopicError`` naming bag, topic, expected and found type otherwise."""
        info = self.topics.get(topic)
        if info is None:
            raise BagTopicError(
                self.path,
                f"not in the bag (expected type {expected_msgtype}); topics: {sorted(self.topics)}",
                topic=topic,
            )
        if not same_msgtype(info.msgtype, expected_msgtype):
            raise BagTopicError(
                self.path, f"expected type {expected_msgtype}, found {info.msgtype}", topic=topic
            )
        return info

    # ---------------------------------------------------------------- messages
    def messages(self, topics: Iterable[str] | None = None) -> Iterator[BagMessage]:
        """Yield ``BagMessage(topic, msgtype, timestamp_ns, rawdata)`` in timestamp order.

        ``topics`` restricts to these topics; an unknown topic raises ``BagTopicError``.
        """
        wanted: set[str] | None = None
        if topics is not None:
            wanted = {topics} if isinstance(topics, str) else set(topics)
            known = self.topics
            for topic in sorted(wanted - known.keys()):
                raise BagTopicError(self.path, f"not in the bag; topics: {sorted(known)}", topic=topic)
        streams = [s.messages(wanted) for s in self._sources]
        merged = streams[0] if len(streams) == 1 else heapq.merge(*streams, key=lambda m: m[0])
        decompress = zstd_module().decompress if self._compression_mode == "message" else None
        for timestamp, topic, msgtype, data in merged:
            if decompress is not None:
                try:
                    data = decompress(data)
                except Exception as err:
                    raise BagTruncatedError(self.path, f"cannot decompress message: {err}", topic=topic) from err
            yield BagMessage(topic, msgtype, timestamp, data)

    def decoded_messages(self, topics: Iterable[str] | None = None) -> Iterator[tuple[str, str, int, object]]:
        """Like ``messages`` but yields ``(topic, msgtype, timestamp_ns, message)``."""
        for topic, msgtype, timestamp, data in self.messages(topics):
            yield topic, msgtype, timestamp, self.deserialize(data, msgtype, topic=topic)

    def typestore_for(self, msgtype: str) -> Typestore:
        """The store used for ``msgtype``: the bag's own definition if usable, else the distro's."""
        msgtype = _norm(msgtype)
        store = None if msgtype in self._embedded_bad else self._embedded_store(msgtype)
        return store if store is not None else distro_typestore(self.distro)

    def deserialize(self, rawdata: bytes | memoryview, msgtype: str, *, topic: str | None = None) -> Any:
        """Deserialise CDR bytes of ``msgtype`` into a rosbags dataclass (ROS 2 field names).

        The bag's embedded definition is tried first; if it is missing or does not fit the
        bytes (some bags carry placeholder definitions), the distro store is used.
        """
        msgtype = _norm(msgtype)
        embedded_error: Exception | None = None
        store = None if msgtype in self._embedded_bad else self._embedded_store(msgtype)
        if store is not None:
            try:
                return store.deserialize_cdr(rawdata, msgtype)
            except Exception as err:  # a definition that does not fit: fall back below
                embedded_error = err
        fallback = distro_typestore(self.distro)
        if msgtype not in fallback.fielddefs:
            extra = f"; the bag's own definition failed: {embedded_error}" if embedded_error else ""
            raise BagTopicError(
                self.path,
                f"no usable definition of {msgtype} (not embedded in the bag, not in ROS 2 {self.distro}){extra}",
                topic=topic,
            )
        try:
            message = fallback.deserialize_cdr(rawdata, msgtype)
        except Exception as err:
            extra = f"; the bag's own definition failed too: {embedded_error}" if embedded_error else ""
            raise BagTopicError(
                self.path, f"cannot deserialise {msgtype} ({self.distro} definition): {err}{extra}", topic=topic
            ) from err
        if embedded_error is not None:
            self._embedded_bad.add(msgtype)
            _log.warning("%s: embedded definition of %s does not fit its messages (%s); using %s",
                         self.path, msgtype, embedded_error, self.distro)
        return message

    def _embedded_store(self, msgtype: str) -> Typestore | None:
        if msgtype not in self._stores:
            store = None
            if msgtype in self._embedded:
                encoding, text = self._embedded[msgtype]
                try:
                    store = typestore_from_definition(msgtype, encoding, text)
                except Exception as err:  # unparsable definition text: use the distro store
                    _log.warning("%s: cannot parse embedded definition of %s: %s", self.path, msgtype, err)
            self._stores[msgtype] = store
        return self._stores[msgtype]


def open_bag(path: str | Path, *, distro: str | None = None, recover: bool = False) -> BagReader:
    """Open a rosbag2 directory or a bare ``.mcap`` / ``.db3`` file.

    ``distro`` ('humble', 'jazzy', 'foxy', ...) picks the fallback definitions; by default
    the bag's ``ros_distro`` when metadata.yaml names a known one, else Humble.
    ``recover=True`` reads the complete messages of truncated MCAP files instead of raising
    ``BagTruncatedError``.
    """
    return BagReader(path, distro=distro, recover=recover)
