"""What the replay transport needs of bags and CDR: reading a bag lazily, decoding its messages,
and converting between messages and CDR bytes for raw subscribers and byte publishers."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hpt_ros.msgs.errors import SerializationError
from hpt_ros.msgs.names import normalize_type_name

from .transport import TransportError

__all__ = ["NS", "BagFeed", "ReplayStats", "decode_bag_message", "deserialize_published", "msg_class", "same_type",
           "serialize_for_raw"]

NS = 1_000_000_000


@dataclass
class ReplayStats:
    """Counters and wall-clock seconds of a replay (shared by sibling transports).

    ``callback_s`` maps ``'topic /x'`` or ``'timer Class.method'`` to the wall seconds
    spent in those callbacks; ``read_s`` is reading bag storage, ``decode_s`` CDR decoding.
    """

    bag_messages: int = 0
    deliveries: int = 0
    timer_calls: int = 0
    publishes: int = 0
    read_s: float = 0.0
    decode_s: float = 0.0
    run_s: float = 0.0
    callback_s: dict[str, float] = field(default_factory=dict)

    def add(self, key: str, seconds: float) -> None:
        self.callback_s[key] = self.callback_s.get(key, 0.0) + seconds

    def as_dict(self) -> dict[str, Any]:
        return {
            "bag_messages": self.bag_messages, "deliveries": self.deliveries, "timer_calls": self.timer_calls,
            "publishes": self.publishes, "read_s": self.read_s, "decode_s": self.decode_s, "run_s": self.run_s,
            "callback_s": dict(sorted(self.callback_s.items())),
        }  # fmt: skip


class BagFeed:
    """One bag being fed into a replay (returned by ``feed_bag``).

    Attributes: ``path`` (the bag), ``topics`` (the topics fed), ``offset_ns`` (added to the
    bag's timestamps), ``start_time`` / ``end_time`` (first and last message of the bag on
    the simulated clock [s]), ``delivered`` (messages taken from the bag so far),
    ``exhausted``.
    """

    def __init__(self, reader: Any, topics: list[str], offset_ns: int, owned: bool):
        self.reader = reader
        self.path = Path(getattr(reader, "path", "<bag>"))
        self.topics = topics
        self.offset_ns = offset_ns
        self.owned = owned
        self.start_ns = int(reader.start_ns) + offset_ns
        self.end_ns = int(reader.end_ns) + offset_ns
        self.delivered = 0
        self.exhausted = False
        self.owner: Any = None
        self._iterator: Iterator[Any] = iter(reader.messages(topics)) if topics else iter(())
        self._checked: set[tuple[int, str]] = set()

    @property
    def start_time(self) -> float:
        return self.start_ns / NS

    @property
    def end_time(self) -> float:
        return self.end_ns / NS

    def next_message(self, stats: ReplayStats) -> Any | None:
        start = time.perf_counter()
        try:
            item = next(self._iterator, None)
        finally:
            stats.read_s += time.perf_counter() - start
        if item is None:
            self.close()
        return item

    def close(self) -> None:
        if not self.exhausted:
            self.exhausted = True
            self._iterator = iter(())
            if self.owned:
                self.reader.close()


def msg_class(msg_type: str) -> type | None:
    from hpt_ros.msgs.idl.registry import MESSAGE_TYPES

    return MESSAGE_TYPES.get(msg_type)


def same_type(a: str, b: str) -> bool:
    return normalize_type_name(a) == normalize_type_name(b)


def decode_bag_message(reader: Any, topic: str, msgtype: str, raw: Any) -> Any:
    """One bag message decoded as the replay delivers it: the package's IDL struct when it has one
    and the bytes fit it, else the bag reader's ``rosbags`` dataclass (errors name bag and topic)."""
    cls = msg_class(msgtype)
    if cls is not None:
        from hpt_ros.msgs.idl import cdr

        try:
            return cdr.deserialize(raw, cls)
        except SerializationError:
            pass  # let the reader try the bag's own definition; it raises naming bag and topic
    return reader.deserialize(raw, msgtype, topic=topic)


def serialize_for_raw(msg: Any, msg_type: str, distro: str, topic: str) -> bytes:
    cls = msg_class(msg_type)
    if cls is not None:
        from hpt_ros.msgs.idl import cdr

        return cdr.serialize(msg, cls)
    from hpt_ros.data.typestores import distro_typestore

    try:
        return bytes(distro_typestore(distro).serialize_cdr(msg, normalize_type_name(msg_type)))
    except Exception as exc:
        raise TransportError(f"{topic} [{msg_type}]: cannot serialise for a raw subscriber: {exc}") from exc


def deserialize_published(data: bytes, msg_type: str, distro: str, topic: str) -> Any:
    cls = msg_class(msg_type)
    if cls is not None:
        from hpt_ros.msgs.idl import cdr

        return cdr.deserialize(data, cls)
    from hpt_ros.data.typestores import distro_typestore

    try:
        return distro_typestore(distro).deserialize_cdr(data, normalize_type_name(msg_type))
    except Exception as exc:
        raise TransportError(f"{topic} [{msg_type}]: cannot decode published CDR bytes: {exc}") from exc
