"""Repair a bag whose writer was killed: keep every complete message, lose nothing on disk.

``repair_bag(path)`` scans the MCAP file front to back (``mcap_scan``), writes a new,
fully indexed MCAP file with every complete message (``rosbags.rosbag2.Writer``, the
original schemas and QoS kept), writes a correct metadata.yaml, marks ``episode.yaml``
``recovered: true`` with the recovered counts, and keeps the original file as
``<name>.mcap.orig``. A bag that is already complete is left untouched
(``RepairReport.repaired`` is False), so running it twice is harmless.

The new file is fully written in a temporary folder before anything is renamed; if the
repair itself is interrupted, running it again picks up the ``.orig`` file.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path, PurePath
from typing import Any, Literal

import yaml
from rosbags.interfaces import Connection, Qos
from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.rosbag2.metadata import parse_qos

from .bag_reader import open_bag
from .episodes import EPISODE_FILE, read_episode_yaml, write_episode_yaml
from .errors import BagError, BagOpenError, InsufficientSpaceError
from .mcap_scan import McapScan, ScannedChannel, scan_mcap
from .typestores import distro_typestore, normalize_msgtype, typestore_from_definition

__all__ = ["RepairReport", "repair_bag"]

_ORIG = ".orig"
_PLACEHOLDER_HASH = "RIHS01_" + "0" * 64


@dataclass(frozen=True)
class RepairReport:
    """What ``repair_bag`` found and did.

    ``message_counts`` are the messages now in the bag, per topic. ``truncated_at`` is the
    byte offset where the readable part of the original file ended (None if complete).
    """

    path: Path
    bag_file: Path
    original: Path | None
    repaired: bool
    message_counts: dict[str, int]
    start_ns: int | None
    end_ns: int | None
    original_size: int
    truncated_at: int | None
    problem: str | None
    notes: list[str] = field(default_factory=list)

    @property
    def message_count(self) -> int:
        """Messages now in the bag."""
        return sum(self.message_counts.values())


def _unique(path: Path) -> Path:
    if not path.exists():
        return path
    n = 1
    while (candidate := path.with_name(f"{path.name}.{n}")).exists():
        n += 1
    return candidate


def _locate(path: Path) -> tuple[Path | None, Path, Path]:
    """(bag folder or None for a bare file, source MCAP file, target MCAP file)."""
    if path.is_file():
        if path.suffix != ".mcap":
            raise BagOpenError(path, "repair_bag handles MCAP bags only (.mcap file or rosbag2 folder)")
        return None, path, path
    if not path.is_dir():
        raise BagOpenError(path, "no such file or directory")
    names: list[str] = []
    meta = path / "metadata.yaml"
    if meta.exists():
        try:
            info = yaml.safe_load(meta.read_text(encoding="utf-8"))["rosbag2_bagfile_information"]
            names = [PurePath(str(x)).name for x in info["relative_file_paths"]]
        except (OSError, yaml.YAMLError, KeyError, TypeError) as err:
            raise BagOpenError(path, f"unreadable metadata.yaml: {err!r}") from err
        if any(not n.endswith(".mcap") for n in names):
            raise BagOpenError(path, f"repair_bag handles mcap storage only, metadata.yaml lists {names}")
    if not names:
        names = sorted(p.name for p in path.glob("*.mcap"))
    if not names:  # an interrupted earlier repair: only the kept original is left
        names = sorted(p.name[: -len(_ORIG)] for p in path.glob(f"*.mcap{_ORIG}"))
    if len(names) != 1:
        raise BagOpenError(path, f"expected exactly one MCAP file, found {names or 'none'}")
    target = path / names[0]
    source = target if target.exists() else target.with_name(target.name + _ORIG)
    if not source.exists():
        raise BagOpenError(path, f"{target.name} is missing")
    return path, source, target


def _is_healthy(folder: Path | None, target: Path, scan: McapScan) -> bool:
    if not scan.complete:
        return False
    try:
        with open_bag(folder if folder is not None else target) as bag:
            return not bag.recovered and bag.message_count == scan.message_count
    except (BagError, OSError):
        return False


def _rihs01(msgtype: str, encoding: str, text: str, distro: str) -> str | None:
    try:
        return typestore_from_definition(msgtype, encoding, text).hash_rihs01(msgtype)
    except Exception:  # unusable embedded definition: try the distro's
        store = distro_typestore(distro)
        return store.hash_rihs01(msgtype) if msgtype in store.fielddefs else None


def _qos(channel: ScannedChannel) -> list[Qos]:
    try:
        return parse_qos(channel.metadata.get("offered_qos_profiles", ""))
    except Exception:  # QoS text is advisory; a bag without it still plays
        return []


def repair_bag(path: str | Path, *, distro: str = "humble", rosbag2_version: Literal[8, 9] = 8) -> RepairReport:
    """Rewrite a killed writer's MCAP bag (folder or bare ``.mcap``) so every tool reads it.

    Keeps the original as ``<name>.mcap.orig`` (and an old metadata.yaml as
    ``metadata.yaml.orig``). Raises ``BagOpenError`` when there is no single MCAP file to
    repair and ``InsufficientSpaceError`` when the copy would not fit on the disk.
    """
    path = Path(path)
    folder, source, target = _locate(path)
    scan = scan_mcap(source)
    if source == target and _is_healthy(folder, target, scan):
        counts = _topic_counts(scan)
        _finish_episode_yaml(folder, counts, scan, None)
        return RepairReport(path, target, None, False, counts, scan.start_ns, scan.end_ns,
                            scan.size, None, None)

    free = shutil.disk_usage(target.parent).free
    if free < scan.valid_end + (16 << 20):
        raise InsufficientSpaceError(
            path, f"repair needs about {scan.valid_end / 1e6:.1f} MB free, {free / 1e6:.1f} MB left"
        )
    notes: list[str] = []
    stem = target.name[: -len(".mcap")]
    workdir = _unique(target.parent / f".repair-{stem}")
    tmp_bag = workdir / stem
    episode = read_episode_yaml(folder) if folder is not None and (folder / EPISODE_FILE).exists() else {}
    try:
        written = _rewrite(scan, tmp_bag, episode, distro, rosbag2_version, notes)
        original = None
        if source == target:
            original = _unique(target.with_name(target.name + _ORIG))
            os.replace(source, original)
        else:
            original = source
        os.replace(tmp_bag / target.name, target)
        if folder is not None:
            meta = folder / "metadata.yaml"
            if meta.exists():
                os.replace(meta, _unique(meta.with_name(meta.name + _ORIG)))
            os.replace(tmp_bag / "metadata.yaml", meta)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)

    with open_bag(folder if folder is not None else target) as bag:
        counts = {topic: info.count for topic, info in bag.topics.items()}
        if bag.recovered or bag.message_count != written:
            raise BagError(path, f"repaired bag holds {bag.message_count} messages, {written} were written")
        start, end = (bag.start_ns, bag.end_ns) if bag.message_count else (None, None)
    truncated_at = None if scan.complete else scan.valid_end
    _finish_episode_yaml(folder, counts, scan, {
        "original": original.name,
        "original_size": scan.size,
        "truncated_at": truncated_at,
        "problem": scan.problem,
        "repaired_at": datetime.now(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z"),
    })
    return RepairReport(path, target, original, True, counts, start, end, scan.size, truncated_at,
                        scan.problem, notes)


def _topic_counts(scan: McapScan) -> dict[str, int]:
    counts: dict[str, int] = {}
    for ch in scan.channels.values():
        counts[ch.topic] = counts.get(ch.topic, 0) + scan.counts.get(ch.id, 0)
    return counts


def _rewrite(
    scan: McapScan, tmp_bag: Path, episode: dict[str, Any], distro: str, version: Literal[8, 9], notes: list[str]
) -> int:
    """Write the complete messages of ``scan`` as a new bag; returns how many were written."""
    writer = Writer(tmp_bag, version=version, storage_plugin=StoragePlugin.MCAP)
    for key in ("task", "episode_index", "operator", "spec_hash"):
        if episode.get(key) is not None:
            writer.set_custom_data(f"hpt_ros.{key}", str(episode[key]))
    writer.set_custom_data("hpt_ros.recovered", "true")
    writer.open()
    try:
        conns: dict[int, Connection] = {}
        by_key: dict[tuple[str, str, str], Connection] = {}
        for ch in scan.channels.values():
            schema = scan.schemas.get(ch.schema_id)
            if schema is None:
                notes.append(f"skipped channel {ch.id} ({ch.topic}): no schema, {scan.counts.get(ch.id, 0)} messages")
                continue
            msgtype = normalize_msgtype(schema.name)
            text = schema.data.decode("utf-8", "replace")
            conn_key = (ch.topic, msgtype, ch.metadata.get("offered_qos_profiles", ""))
            if conn_key not in by_key:
                rihs01 = _rihs01(msgtype, schema.encoding, text, distro)
                if rihs01 is None:
                    notes.append(f"{ch.topic}: type hash of {msgtype} unknown, placeholder written")
                by_key[conn_key] = writer.add_connection(
                    ch.topic, msgtype, msgdef=text, rihs01=rihs01 or _PLACEHOLDER_HASH,
                    serialization_format=ch.message_encoding or "cdr", offered_qos_profiles=_qos(ch),
                )
            conns[ch.id] = by_key[conn_key]
        # topics the episode declared whose channel records never reached the disk
        store = distro_typestore(distro)
        present = {c.topic for c in by_key.values()}
        declared = episode.get("topics")
        for topic, msgtype in (declared.items() if isinstance(declared, dict) else ()):
            if topic not in present and isinstance(msgtype, str) and msgtype in store.fielddefs:
                writer.add_connection(topic, msgtype, typestore=store)
                notes.append(f"{topic}: no record reached the disk; topic kept with 0 messages")
        written = 0
        for channel_id, timestamp, data in scan.messages(conns.keys()):
            writer.write(conns[channel_id], timestamp, data)
            written += 1
        writer.close()
        return written
    except BaseException:
        writer.abort()
        raise


def _finish_episode_yaml(
    folder: Path | None, counts: dict[str, int], scan: McapScan, repair: dict[str, Any] | None
) -> None:
    if folder is None or not (folder / EPISODE_FILE).exists():
        return
    doc = read_episode_yaml(folder)
    if repair is None and doc.get("complete") is True:
        return
    declared = doc.get("message_counts")
    counts = {**{str(t): 0 for t in (declared if isinstance(declared, dict) else {})}, **counts}
    start, end = scan.start_ns, scan.end_ns
    doc.update(
        {
            "start_ns": start,
            "end_ns": end,
            "duration_s": (end - start) / 1e9 if start is not None and end is not None else 0.0,
            "message_count": sum(counts.values()),
            "message_counts": counts,
            "complete": True,
            "recovered": True,
        }
    )
    if repair is not None:
        doc["repair"] = repair
    write_episode_yaml(folder, doc)
