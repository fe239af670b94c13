"""The control ticks of one bag: what the live policy node would have observed at each tick,
and the latest recorded action (rules in :mod:`hpt_ros.data.dataset`)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from hpt_ros.spec import RobotSpec

from .actions import ActionSource, ActionDecoder
from .errors import DatasetError

__all__ = ["TickRecord", "iter_ticks"]

logger = logging.getLogger("hpt_ros.data")


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
    """The control ticks of one bag, in order (the rules are in :mod:`hpt_ros.data.dataset`).

    ``stats`` (a Counter) receives counts: messages per kind, conversion errors, skipped
    ticks per reason. Raises ``DatasetError`` when a required sensor or the action topic
    is missing or has another type.
    """
    from hpt_ros.msgs import messages
    from hpt_ros.runtime.errors import ObservationError, SensorDataError
    from hpt_ros.runtime.observation import ObservationCache

    from .bag_reader import open_bag
    from .errors import BagError
    from .typestores import same_msgtype

    stats = stats if stats is not None else Counter()
    source = action_source or ActionSource.from_spec(spec)
    decoder = ActionDecoder(spec, source)
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
