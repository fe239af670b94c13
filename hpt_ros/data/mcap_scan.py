"""Front-to-back scan of an MCAP file that may have been cut short.

A writer killed mid-episode leaves an MCAP file without summary, footer or end magic,
which index-based readers (``rosbags``, ``mcap``'s seeking reader) refuse. This module
walks the records from the start, stops at the first incomplete or corrupt record, and
remembers where every complete chunk (or run of loose messages) lies, so that the
complete messages can be read back in timestamp order without holding the file in memory.

Record framing is read here; record bodies are decoded with the ``mcap`` library's record
classes (``Schema.read``, ``Channel.read``, ``Chunk.read``).
"""

from __future__ import annotations

import heapq
import struct
import zlib
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from io import BytesIO
from pathlib import Path
from typing import BinaryIO

from mcap.data_stream import ReadDataStream
from mcap.opcode import Opcode
from mcap.records import Channel, Chunk, Schema

from .errors import BagOpenError
from .typestores import zstd_module

__all__ = ["MCAP_MAGIC", "McapScan", "ScannedChannel", "ScannedSchema", "scan_mcap"]

MCAP_MAGIC = b"\x89MCAP0\r\n"
_FRAME = struct.Struct("<BQ")
_MESSAGE_HEAD = struct.Struct("<HIQQ")
_RUN_LIMIT = 4 << 20  # bytes of loose messages grouped into one block


@dataclass(frozen=True)
class ScannedSchema:
    """A schema record: the message type name and its definition text."""

    id: int
    name: str
    encoding: str
    data: bytes


@dataclass(frozen=True)
class ScannedChannel:
    """A channel record: topic, message encoding, metadata (QoS text) and schema id."""

    id: int
    topic: str
    message_encoding: str
    metadata: dict[str, str]
    schema_id: int


@dataclass
class _Block:
    """A complete chunk, or a run of loose messages in time order, and where it lies."""

    offset: int
    length: int
    chunked: bool
    start: int
    end: int
    channels: set[int] = field(default_factory=set)


@dataclass
class McapScan:
    """What a scan found: records up to ``valid_end`` are complete, the rest is not."""

    path: Path
    size: int
    schemas: dict[int, ScannedSchema] = field(default_factory=dict)
    channels: dict[int, ScannedChannel] = field(default_factory=dict)
    counts: dict[int, int] = field(default_factory=dict)
    start_ns: int | None = None
    end_ns: int | None = None
    complete: bool = False
    valid_end: int = 0
    problem: str | None = None
    blocks: list[_Block] = field(default_factory=list)

    @property
    def message_count(self) -> int:
        """Number of complete messages."""
        return sum(self.counts.values())

    def msgtype(self, channel_id: int) -> str:
        """The message type of a channel ('' when its schema is unknown)."""
        channel = self.channels.get(channel_id)
        schema = self.schemas.get(channel.schema_id) if channel else None
        return schema.name if schema else ""

    def messages(self, channel_ids: Collection[int] | None = None) -> Iterator[tuple[int, int, bytes]]:
        """Yield ``(channel_id, log_time_ns, data)`` of every complete message, by time.

        Blocks are read lazily (each is first represented by its start time), so only the
        blocks that overlap in time are held in memory at once.
        """
        wanted = None if channel_ids is None else set(channel_ids)
        blocks = [b for b in self.blocks if wanted is None or b.channels & wanted]
        if not blocks:
            return
        with self.path.open("rb") as f:
            sources = [_block_messages(f, order, b, wanted) for order, b in enumerate(blocks)]
            for log_time, _order, index, channel_id, data in heapq.merge(*sources):
                if index >= 0:
                    yield channel_id, log_time, data


def _decompress(chunk: Chunk) -> bytes:
    """Uncompressed records of a chunk, checked against its size and CRC."""
    if chunk.compression == "":
        raw = chunk.data
    elif chunk.compression == "zstd":
        raw = zstd_module().decompress(chunk.data)
    elif chunk.compression == "lz4":
        import lz4.frame  # a dependency of rosbags

        raw = lz4.frame.decompress(chunk.data)
    else:
        raise ValueError(f"unsupported chunk compression {chunk.compression!r}")
    if len(raw) != chunk.uncompressed_size:
        raise ValueError(f"chunk size mismatch: {len(raw)} != {chunk.uncompressed_size}")
    if chunk.uncompressed_crc and zlib.crc32(raw) != chunk.uncompressed_crc:
        raise ValueError("chunk CRC mismatch")
    return raw


def _frames(buf: bytes | memoryview) -> Iterator[tuple[int, memoryview]]:
    """Records ``(opcode, body)`` of a complete byte buffer (a chunk's or a run's)."""
    view = memoryview(buf)
    pos = 0
    while pos < len(view):
        if pos + 9 > len(view):
            raise ValueError("record header runs past the end of its container")
        opcode, length = _FRAME.unpack_from(view, pos)
        if pos + 9 + length > len(view):
            raise ValueError("record runs past the end of its container")
        yield opcode, view[pos + 9 : pos + 9 + length]
        pos += 9 + length


def _block_messages(
    f: BinaryIO, order: int, block: _Block, wanted: set[int] | None
) -> Iterator[tuple[int, int, int, int, bytes]]:
    """Merge source for one block: a start-time placeholder, then its messages by time."""
    yield block.start, order, -1, 0, b""
    f.seek(block.offset)
    raw = f.read(block.length)
    if block.chunked:
        raw = _decompress(Chunk.read(ReadDataStream(BytesIO(raw[9:]))))
    found: list[tuple[int, int, int, bytes]] = []
    for opcode, body in _frames(raw):
        if opcode == Opcode.MESSAGE:
            channel_id, _seq, log_time, _pub = _MESSAGE_HEAD.unpack_from(body)
            if wanted is None or channel_id in wanted:
                found.append((log_time, len(found), channel_id, bytes(body[22:])))
    found.sort()
    for log_time, index, channel_id, data in found:
        yield log_time, order, index, channel_id, data


class _Scanner:
    """Accumulates schemas, channels and message statistics into a ``McapScan``."""

    def __init__(self, scan: McapScan):
        self.scan = scan
        self.run: _Block | None = None

    def record(self, opcode: int, body: memoryview) -> None:
        if opcode == Opcode.SCHEMA:
            rec = Schema.read(ReadDataStream(BytesIO(body)))
            self.scan.schemas.setdefault(
                rec.id, ScannedSchema(rec.id, rec.name, rec.encoding, bytes(rec.data))
            )
        elif opcode == Opcode.CHANNEL:
            rec = Channel.read(ReadDataStream(BytesIO(body)))
            self.scan.channels.setdefault(
                rec.id,
                ScannedChannel(rec.id, rec.topic, rec.message_encoding, dict(rec.metadata), rec.schema_id),
            )

    def message(self, body: memoryview) -> tuple[int, int]:
        if len(body) < 22:
            raise ValueError(f"message record of {len(body)} bytes is too short")
        channel_id, _seq, log_time, _pub = _MESSAGE_HEAD.unpack_from(body)
        scan = self.scan
        scan.counts[channel_id] = scan.counts.get(channel_id, 0) + 1
        scan.start_ns = log_time if scan.start_ns is None else min(scan.start_ns, log_time)
        scan.end_ns = log_time if scan.end_ns is None else max(scan.end_ns, log_time)
        return channel_id, log_time

    def top_level(self, opcode: int, body: memoryview, offset: int) -> None:
        if opcode == Opcode.MESSAGE:
            channel_id, log_time = self.message(body)
            run = self.run
            if run is None or log_time < run.end or run.length > _RUN_LIMIT:
                run = self.run = _Block(offset, 0, False, log_time, log_time)
                self.scan.blocks.append(run)
            run.length = offset + 9 + len(body) - run.offset
            run.end = log_time
            run.channels.add(channel_id)
            return
        if opcode == Opcode.CHUNK:
            self.run = None
            raw = _decompress(Chunk.read(ReadDataStream(BytesIO(body))))
            block = _Block(offset, 9 + len(body), True, 0, 0)
            times = []
            for inner_op, inner in _frames(raw):
                if inner_op == Opcode.MESSAGE:
                    channel_id, log_time = self.message(inner)
                    block.channels.add(channel_id)
                    times.append(log_time)
                else:
                    self.record(inner_op, inner)
            if times:
                block.start, block.end = min(times), max(times)
                self.scan.blocks.append(block)
            return
        if opcode == Opcode.DATA_END:
            self.run = None
        self.record(opcode, body)


def scan_mcap(path: str | Path) -> McapScan:
    """Scan an MCAP file front to back; never raises for truncation or corruption.

    Raises ``BagOpenError`` only when the file cannot be read or is not an MCAP file.
    ``complete`` tells whether footer and end magic were found; ``problem`` says why the
    scan stopped early; ``valid_end`` is the offset just after the last complete record.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
        f = path.open("rb")
    except OSError as err:
        raise BagOpenError(path, f"cannot read: {err.strerror or err}") from err
    scan = McapScan(path=path, size=size)
    scanner = _Scanner(scan)
    with f:
        if f.read(8) != MCAP_MAGIC:
            raise BagOpenError(path, "not an MCAP file (bad magic at the start)")
        pos = scan.valid_end = 8
        while True:
            head = f.read(9)
            if len(head) < 9:
                scan.problem = f"file ends at byte {size} without MCAP footer (truncated)"
                break
            opcode, length = _FRAME.unpack(head)
            if pos + 9 + length > size:
                scan.problem = (
                    f"record at byte {pos} (opcode 0x{opcode:02x}, {length} bytes) runs past "
                    f"the end of the file at byte {size} (truncated)"
                )
                break
            body = memoryview(f.read(length))
            try:
                scanner.top_level(opcode, body, pos)
            except Exception as err:  # corrupt data of any kind ends the readable part
                scan.problem = f"corrupt record at byte {pos} (opcode 0x{opcode:02x}): {err}"
                break
            pos += 9 + length
            scan.valid_end = pos
            if opcode == Opcode.FOOTER:
                if f.read(8) == MCAP_MAGIC:
                    scan.complete = True
                else:
                    scan.problem = "footer is not followed by the MCAP end magic"
                break
    return scan
