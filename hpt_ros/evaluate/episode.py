"""Replay one bag through the live policy node on a simulated clock and collect what it would have done.

``replay_episode(bag, spec, engine)``:

1. opens the bag (any rosbag2 directory, bare ``.mcap`` / ``.db3``; ``recover=True``
   reads the complete messages of a truncated MCAP file) and checks every topic the
   spec needs: present, of the spec's type, not empty, and its first message converts
   (each problem is an :class:`EvaluationError` / ``BagError`` naming bag and topic);
2. reads the recorded actions (the spec's command + gripper topics, or a leader-arm
   JointState topic). A bag without one of the two streams (no gripper topic, say) is
   scored on the dimensions it has; the others are listed with the reason in
   ``EpisodeResult.not_scored``. A bag with neither is an :class:`EvaluationError`;
3. builds :class:`~hpt_ros.nodes.policy_node.PolicyNode`, the node that runs live, on a
   :class:`~hpt_ros.ros.replay.ReplayTransport` whose clock starts at the bag's start, and
   feeds it the bag's sensor topics (and the enable topic when the bag has it). Control
   ticks fall at ``start + k * period`` (k = 1, 2, ...) up to the bag's last message;
4. keeps every tick's ``TickResult`` (by wrapping ``runtime.tick``; the node's code is
   unchanged) and reads the commands the node published back into action vectors with
   the same functions that read the recorded ones.

Enable gating: the node starts enabled (``auto_enable``), so a bag without the spec's
enable topic evaluates every tick the sensors allow. When the bag has the enable topic,
its recorded values gate motion from their timestamps on, exactly as live (``disabled``
ticks are then held, not errors).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from hpt_ros.data import open_bag
from hpt_ros.data.errors import BagTopicError
from hpt_ros.msgs import messages
from hpt_ros.msgs.errors import MessageConversionError
from hpt_ros.ros.replay import ReplayTransport, decode_bag_message
from hpt_ros.spec.schema import RobotSpec

from .actions import ActionLayout, ActionSeries, arm_command_to_vector, gripper_to_value
from .errors import EvaluationError

__all__ = ["EpisodeResult", "replay_episode"]

logger = logging.getLogger("hpt_ros.evaluate")

JOINT_STATE = "sensor_msgs/msg/JointState"
_CONTROL_TIMER = "timer PolicyNode._on_control_tick"


@dataclass(eq=False)
class EpisodeResult:
    """What one bag's replay produced (arrays per control tick).

    ``predicted`` [ticks, dim] holds the command the policy sent (NaN rows: held ticks);
    ``recorded`` [ticks, dim] the recorded action at each tick (NaN: none yet);
    ``reasons`` the hold reason per tick ('' when a command was sent);
    ``scored`` bool [dim]: the action dimensions the bag records (its other columns of
    ``recorded`` are NaN); ``not_scored`` the reason for each dimension left out, by label.
    """

    bag: str
    start_ns: int
    end_ns: int
    tick_ns: np.ndarray
    reasons: list[str]
    predicted: np.ndarray
    recorded: np.ndarray
    latencies_s: np.ndarray
    info: dict[str, Any] = field(default_factory=dict)
    timing: dict[str, Any] = field(default_factory=dict)
    scored: np.ndarray | None = None  # None: every dimension
    not_scored: dict[str, str] = field(default_factory=dict)

    @property
    def duration_s(self) -> float:
        return (self.end_ns - self.start_ns) / 1e9

    @property
    def tick_s(self) -> np.ndarray:
        """Tick times relative to the bag's start [s]."""
        return (self.tick_ns - self.start_ns) / 1e9

    @property
    def commanded(self) -> np.ndarray:
        return np.array([not r for r in self.reasons], dtype=bool)

    @property
    def evaluated(self) -> np.ndarray:
        """Ticks with a command and a recorded action (in every dimension the bag records)."""
        recorded = self.recorded if self.scored is None else self.recorded[:, self.scored]
        return self.commanded & np.isfinite(recorded).all(axis=1)


# -- checks -------------------------------------------------------------------------------------------

def _require(reader: Any, topic: str, msg_type: str, *, need_messages: bool = True) -> None:
    info = reader.require_topic(topic, msg_type)  # BagTopicError: missing or of another type
    if need_messages and info.count == 0:
        raise BagTopicError(reader.path, f"has no messages (type {info.msgtype})", topic=topic)


def _first(reader: Any, topic: str) -> Any:
    for item in reader.messages([topic]):
        return decode_bag_message(reader, item.topic, item.msgtype, item.rawdata)
    raise BagTopicError(reader.path, "has no messages", topic=topic)


def _preflight(reader: Any, spec: RobotSpec, present: Sequence[Any]) -> list[tuple[int, int]]:
    """Convert the first message of every sensor the bag has, as the node will; their image sizes."""
    sizes = []
    for sensor in present:
        msg = _first(reader, sensor.topic)
        try:
            if sensor.is_image:
                convert = (messages.compressed_image_to_rgb if sensor.type.endswith("CompressedImage")
                           else messages.image_to_rgb)  # fmt: skip
                sizes.append(tuple(convert(msg, topic=sensor.topic).shape[:2]))
            else:
                messages.joint_state_to_array(msg, sensor.joints, field=sensor.field, topic=sensor.topic)
        except MessageConversionError as exc:
            raise EvaluationError(reader.path, f"its messages do not convert for sensor {sensor.name!r}: "
                                  f"{exc.reason}", topic=sensor.topic) from exc  # fmt: skip
    return sizes


def _read_series(reader: Any, topic: str, convert: Any, width: int) -> ActionSeries:
    times, values = [], []
    for item in reader.messages([topic]):
        msg = decode_bag_message(reader, item.topic, item.msgtype, item.rawdata)
        try:
            values.append(convert(msg))
        except MessageConversionError as exc:
            raise EvaluationError(reader.path, f"recorded action at t={item.timestamp_ns / 1e9:.9f} does not "
                                  f"convert: {exc.reason}", topic=topic) from exc  # fmt: skip
        times.append(item.timestamp_ns)
    return ActionSeries(topic, times, np.array(values, dtype=np.float64).reshape(len(times), width), width)


def _action_streams(reader: Any, spec: RobotSpec, layout: ActionLayout) -> tuple[set[str], dict[str, str]]:
    """The action streams ("arm", "gripper") the bag records, and why each dimension of the others is not scored.

    A stream whose topic is absent or empty leaves its dimensions unscored; one of another
    type is an error (it is there, but not what the spec says). None at all is an error.
    """
    action = spec.action
    streams = {"arm": (action.command.topic, action.command.type, [layout.labels[i] for i in layout.arm_index])}
    if action.gripper is not None and layout.gripper_index is not None:
        streams["gripper"] = (action.gripper.topic, action.gripper.type, [layout.labels[layout.gripper_index]])
    present: set[str] = set()
    not_scored: dict[str, str] = {}
    for name, (topic, msg_type, labels) in streams.items():
        info = reader.topics.get(topic)
        if info is None or info.count == 0:
            why = f"topic {topic} ({msg_type}) {'is not in the bag' if info is None else 'has no messages'}"
            not_scored.update(dict.fromkeys(labels, why))
            continue
        _require(reader, topic, msg_type)
        present.add(name)
    if not present:
        missing = [topic for topic, _, _ in streams.values()]
        raise EvaluationError(reader.path, f"none of the recorded action is in the bag (nothing to score): "
                              f"{'; '.join(dict.fromkeys(not_scored.values()))}; the bag has: "
                              f"{', '.join(sorted(reader.topics)) or '(no topics)'}", topics=missing)  # fmt: skip
    return present, not_scored


def _recorded_actions(reader: Any, spec: RobotSpec, layout: ActionLayout, tick_ns: np.ndarray,
                      action_topic: str | None, action_joint_names: Sequence[str] | None,
                      streams: set[str]) -> np.ndarray:
    """float64 [ticks, dim]: the latest recorded action at or before each tick (NaN: none yet, or not recorded).

    ``streams``: the command streams the bag has ("arm", "gripper"); without ``action_topic`` only.
    """
    action = spec.action
    out = np.full((len(tick_ns), layout.dim), np.nan)
    if action_topic is not None:
        names = list(action_joint_names or action.joints)
        series = _read_series(reader, action_topic,
                              lambda m: messages.joint_state_to_array(m, names, topic=action_topic), len(names))
        return series.at(tick_ns)
    if "arm" in streams:
        arm = _read_series(reader, action.command.topic, lambda m: arm_command_to_vector(m, spec),
                           len(layout.arm_index))
        out[:, layout.arm_index] = arm.at(tick_ns)
    if "gripper" in streams and layout.gripper_index is not None:
        grip = _read_series(reader, action.gripper.topic, lambda m: [gripper_to_value(m, spec)], 1)
        out[:, layout.gripper_index] = grip.at(tick_ns)[:, 0]
    return out


# -- the replay ------------------------------------------------------------------------------------------

def replay_episode(
    bag: str | Path,
    spec: RobotSpec,
    engine: Any,
    *,
    action_topic: str | None = None,
    action_joint_names: Sequence[str] | None = None,
    recover: bool = False,
    distro: str | None = None,
    enable_from_bag: bool = True,
    warmed_up: set[tuple[int, int]] | None = None,
) -> EpisodeResult:
    """Replay ``bag`` through ``PolicyNode(spec, engine)``; see the module docstring.

    ``action_topic``: take the recorded actions from this sensor_msgs/JointState topic
    (a leader arm) instead of the spec's command and gripper topics; ``action_joint_names``
    are its joints that correspond, in order, to ``spec.action.joints`` (default: the same
    names). ``warmed_up``: frame sizes the engine has already run on (updated); the first
    time a size is seen the engine is warmed up before the timed replay.
    """
    from hpt_ros.nodes.policy_node import PolicyNode

    total_start = time.perf_counter()
    action = spec.action
    layout = ActionLayout.of(spec)
    if action_topic is not None:
        if action.kind != "joint_position":
            raise ValueError(f"action_topic (a leader-arm JointState) needs a joint_position spec, not {action.kind}")
        if action_joint_names is not None and len(action_joint_names) != len(action.joints):
            raise ValueError(f"action_joint_names has {len(action_joint_names)} names for the spec's "
                             f"{len(action.joints)} action joints {list(action.joints)}")  # fmt: skip
    with open_bag(bag, distro=distro, recover=recover) as reader:
        # 1. topics: present, right type, not empty, convertible
        present = []  # required sensors, and optional ones the bag has messages of
        for sensor in spec.sensors:
            info = reader.topics.get(sensor.topic)
            if sensor.required or (info is not None and info.count > 0):
                _require(reader, sensor.topic, sensor.type)
                present.append(sensor)
        streams: set[str] = set()
        not_scored: dict[str, str] = {}
        if action_topic is not None:
            _require(reader, action_topic, JOINT_STATE)
        else:
            streams, not_scored = _action_streams(reader, spec, layout)
        enable_topic = spec.safety.enable_topic
        use_enable = enable_from_bag and enable_topic in reader.topics
        if use_enable:
            _require(reader, enable_topic, "std_msgs/msg/Bool", need_messages=False)
        sizes = _preflight(reader, spec, present)

        # 2. the control grid and the recorded actions on it
        start_ns, end_ns = int(reader.start_ns), int(reader.end_ns)
        period_ns = max(1, round(spec.period_s * 1e9))  # as ReplayTransport.create_timer rounds it
        count = max(0, (end_ns - start_ns) // period_ns)
        tick_grid = start_ns + period_ns * np.arange(1, count + 1, dtype=np.int64)
        recorded_grid = _recorded_actions(reader, spec, layout, tick_grid, action_topic, action_joint_names, streams)

        # 3. engine warm-up for this frame size (trace / compile happen outside the timed replay)
        warmup_s = 0.0
        if engine is not None and sizes:
            size = sizes[0] if len(set(sizes)) == 1 else (spec.image_size, spec.image_size)
            if warmed_up is None or size not in warmed_up:
                t0 = time.perf_counter()
                engine.warmup(height=size[0], width=size[1], iterations=2)
                warmup_s = time.perf_counter() - t0
                if warmed_up is not None:
                    warmed_up.add(size)

        # 4. the live node on the replay clock
        record = [action.command.topic] + ([action.gripper.topic] if action.gripper else [])
        transport = ReplayTransport("policy_node", {"auto_enable": True}, start_ns=start_ns, record=record,
                                    distro=reader.distro)
        node = PolicyNode(transport, spec=spec, engine=engine)
        ticks: list[tuple[int, Any]] = []
        original_tick = node.runtime.tick

        def recording_tick(now: float) -> Any:
            result = original_tick(now)
            ticks.append((transport.now_ns(), result))
            return result

        node.runtime.tick = recording_tick  # type: ignore[method-assign]
        feed_topics = [s.topic for s in present] + ([enable_topic] if use_enable else [])
        transport.feed_bag(reader, feed_topics)
        transport.run(until_ns=end_ns)
        stats = transport.stats
        events = node.runtime.events
        transport.shutdown()
        info = {
            "storage": reader.storage_identifier,
            "metadata_version": reader.metadata_version,
            "distro": reader.distro,
            "recovered": bool(reader.recovered),
            "enable_from_bag": bool(use_enable),
            "sensors_fed": feed_topics,
            "frame_sizes": [list(s) for s in sizes],
            "hold_events": sum(1 for e in events if e.kind == "hold"),
        }

    # 5. what the node sent, read back through the message layer
    tick_ns = np.array([t for t, _ in ticks], dtype=np.int64)
    if len(tick_ns) != len(tick_grid) or not np.array_equal(tick_ns, tick_grid):
        raise RuntimeError(f"{bag}: the replay ticked {len(tick_ns)} times, the control grid has {len(tick_grid)}")
    reasons = [r.reason if r.command is None else "" for _, r in ticks]
    predicted = np.full((len(ticks), layout.dim), np.nan)
    commanded = [i for i, (_, r) in enumerate(ticks) if r.command is not None]
    sent = transport.published_on(action.command.topic)
    sent_gripper = transport.published_on(action.gripper.topic) if action.gripper else []
    if len(sent) != len(commanded) or (action.gripper and len(sent_gripper) != len(commanded)):
        raise RuntimeError(f"{bag}: {len(commanded)} commanded ticks but {len(sent)} commands published")
    for k, i in enumerate(commanded):
        t_ns, result = ticks[i]
        if abs(sent[k].time - t_ns / 1e9) > 1e-6:
            raise RuntimeError(f"{bag}: command {k} published at {sent[k].time}, its tick was at {t_ns / 1e9}")
        vector = np.full(layout.dim, np.nan)
        vector[layout.arm_index] = arm_command_to_vector(sent[k].msg, spec)
        if layout.gripper_index is not None:
            vector[layout.gripper_index] = gripper_to_value(sent_gripper[k].msg, spec)
        mismatch = np.abs(layout.difference(vector, result.command)).max()
        if not mismatch < 1e-6:
            raise RuntimeError(f"{bag}: the published command differs from the runtime's by {mismatch}")
        predicted[i] = vector
    latencies = np.array([r.latency_s for _, r in ticks if r.latency_s is not None], dtype=np.float64)

    replay_s = stats.run_s
    callbacks = stats.callback_s
    control_s = callbacks.get(_CONTROL_TIMER, 0.0)
    sensor_s = sum(v for k, v in callbacks.items() if k.startswith("topic "))
    other_timers_s = sum(v for k, v in callbacks.items() if k.startswith("timer ") and k != _CONTROL_TIMER)
    inference_s = float(latencies.sum())
    duration = (end_ns - start_ns) / 1e9
    timing = {
        "bag_duration_s": duration,
        "replay_wall_s": replay_s,
        "speed_x_realtime": duration / replay_s if replay_s > 0 else None,
        "total_wall_s": time.perf_counter() - total_start,
        "warmup_s": warmup_s,
        "breakdown_s": {
            "inference": inference_s,
            "control_tick_other": control_s - inference_s,
            "sensor_callbacks": sensor_s,
            "bag_read": stats.read_s,
            "cdr_decode": stats.decode_s,
            "other_timers": other_timers_s,
            "replay_loop": max(0.0, replay_s - control_s - sensor_s - other_timers_s - stats.read_s - stats.decode_s),
        },
        "inferences": int(latencies.size),
        "inference_ms_p50": float(np.percentile(latencies, 50) * 1e3) if latencies.size else None,
        "bag_messages": stats.bag_messages,
    }
    scored = np.array([label not in not_scored for label in layout.labels], dtype=bool)
    return EpisodeResult(str(bag), start_ns, end_ns, tick_ns, reasons, predicted, recorded_grid, latencies,
                         info, timing, scored, not_scored)  # fmt: skip
