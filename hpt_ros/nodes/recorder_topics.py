"""What the teleop recorder records: the spec's sensors, the teleoperator's action source, extras.

``recorded_topics(spec, ...)`` lists :class:`RecordedTopic` entries (topic, type, role,
QoS). The action source is configurable:

==============  ===========================================  ======================================
source          default topic                                type
==============  ===========================================  ======================================
``command``     the spec's command topic (+ gripper topic)   the spec's types (default)
``joint_state`` ``/leader/joint_states`` (a leader arm)      sensor_msgs/msg/JointState
``twist``       ``/spacemouse/twist`` (SpaceMouse)           geometry_msgs/msg/TwistStamped
``pose``        ``/vr/pose`` (a VR controller)               geometry_msgs/msg/PoseStamped
==============  ===========================================  ======================================

QoS: a reliable reader does not match a best-effort writer in DDS, while a best-effort
reader matches both. Images (cameras publish with the sensor-data profile, best effort)
are therefore read best effort; everything else reliable (joint_state_broadcaster and
controllers publish reliable), unless listed in ``best_effort_topics``.

:class:`TopicMonitor` keeps what the status line shows: messages received, the rate, and
"late" messages (receive time - header stamp > a threshold), read from the CDR bytes
without deserialising them.
"""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from hpt_ros.ros.transport import QOS_DEFAULT, QOS_SENSOR_DATA, QoSProfile, Reliability
from hpt_ros.spec import RobotSpec

__all__ = [
    "ACTION_SOURCES",
    "RecordedTopic",
    "TopicMonitor",
    "bag_qos",
    "has_header",
    "header_stamp_ns",
    "parse_topic_list",
    "recorded_topics",
]

#: action source -> (default topic, message type); ``command`` uses the spec's command and gripper.
ACTION_SOURCES: dict[str, tuple[str, str] | None] = {
    "command": None,
    "joint_state": ("/leader/joint_states", "sensor_msgs/msg/JointState"),
    "twist": ("/spacemouse/twist", "geometry_msgs/msg/TwistStamped"),
    "pose": ("/vr/pose", "geometry_msgs/msg/PoseStamped"),
}

#: the status line's rates are averages over this window [s]
RATE_WINDOW_S = 2.0

_HEADER_TYPES = {
    "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage", "sensor_msgs/msg/JointState",
    "geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/TwistStamped", "trajectory_msgs/msg/JointTrajectory",
}


@dataclass(frozen=True)
class RecordedTopic:
    topic: str
    type: str
    role: str  # "sensor", "action", "action_gripper", "extra"
    label: str  # short name for the status line (the spec's sensor name, "action", ...)
    qos: QoSProfile
    stamped: bool  # the message starts with a std_msgs/Header

    @property
    def best_effort(self) -> bool:
        return self.qos.reliability is Reliability.BEST_EFFORT


def has_header(msg_type: str, distro: str = "humble") -> bool:
    """True when ``msg_type`` starts with a std_msgs/Header (so its stamp can be read from the CDR)."""
    if msg_type in _HEADER_TYPES:
        return True
    try:
        from hpt_ros.data import distro_typestore

        fields = distro_typestore(distro).fielddefs[msg_type][1]
    except (KeyError, ValueError, IndexError):
        return False
    return bool(fields) and fields[0][1][1] == "std_msgs/msg/Header"


_LE = struct.Struct("<iI")
_BE = struct.Struct(">iI")


def header_stamp_ns(data: Any) -> int:
    """The header stamp [ns] of CDR bytes (with encapsulation header) of a message that starts
    with std_msgs/Header; 0 when too short or unset."""
    if len(data) < 12:
        return 0
    sec, nsec = (_LE if data[1] & 1 else _BE).unpack_from(data, 4)
    return sec * 1_000_000_000 + nsec


def parse_topic_list(text: Any) -> list[str]:
    """'a, b' or ['a', 'b'] -> ['a', 'b'] (parameters are strings on every transport)."""
    if isinstance(text, (list, tuple)):
        items: Iterable[Any] = text
    else:
        items = str(text or "").replace(";", ",").split(",")
    return [str(i).strip() for i in items if str(i).strip()]


def recorded_topics(
    spec: RobotSpec,
    *,
    action_source: str = "command",
    action_topic: str = "",
    action_gripper_topic: str = "",
    action_gripper_type: str = "",
    extra_topics: Iterable[str] = (),
    best_effort_topics: Iterable[str] = (),
    distro: str = "humble",
) -> list[RecordedTopic]:
    """Every topic the recorder subscribes to, sensors first. Raises ValueError on a bad setting.

    ``action_gripper_topic``: '' = the spec's gripper topic for the ``command`` source (none
    for the others), 'none' = no gripper topic. ``extra_topics``: 'topic:type' entries.
    """
    if action_source not in ACTION_SOURCES:
        raise ValueError(f"action_source {action_source!r}: expected one of {', '.join(ACTION_SOURCES)}")
    best_effort = set(best_effort_topics)
    entries: list[tuple[str, str, str, str]] = [
        (s.topic, s.type, "sensor", s.name) for s in spec.sensors
    ]
    if action_source == "command":
        entries.append((action_topic or spec.action.command.topic, spec.action.command.type, "action", "action"))
    else:
        default_topic, msg_type = ACTION_SOURCES[action_source]  # type: ignore[misc]
        entries.append((action_topic or default_topic, msg_type, "action", "action"))
    gripper = spec.action.gripper
    if action_gripper_topic.strip().lower() != "none":
        if action_gripper_topic:
            gtype = action_gripper_type or (gripper.type if gripper else "std_msgs/msg/Float64MultiArray")
            entries.append((action_gripper_topic, gtype, "action_gripper", "gripper"))
        elif action_source == "command" and gripper is not None:
            entries.append((gripper.topic, action_gripper_type or gripper.type, "action_gripper", "gripper"))
    for item in extra_topics:
        topic, sep, msg_type = item.partition(":")
        if not sep or not topic.strip() or not msg_type.strip():
            raise ValueError(f"extra topic {item!r}: expected 'TOPIC:TYPE', e.g. '/tf:tf2_msgs/msg/TFMessage'")
        topic = topic.strip()
        entries.append((topic, msg_type.strip(), "extra", topic.rsplit("/", 1)[-1] or topic))

    out: list[RecordedTopic] = []
    seen: dict[str, str] = {}
    for topic, msg_type, role, label in entries:
        if not topic.startswith("/"):
            raise ValueError(f"{role} topic {topic!r} must be absolute ('/...')")
        if topic in seen:
            if seen[topic] != msg_type:
                raise ValueError(f"topic {topic} is recorded twice with different types: {seen[topic]} and {msg_type}")
            continue  # e.g. a leader arm on a topic already recorded as a sensor
        seen[topic] = msg_type
        is_image = msg_type in ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
        qos = QOS_SENSOR_DATA if is_image or topic in best_effort else QOS_DEFAULT
        out.append(RecordedTopic(topic, msg_type, role, label, qos, has_header(msg_type, distro)))
    return out


def bag_qos(topic: RecordedTopic) -> list[Any]:
    """The offered QoS rosbag2 stores for ``topic`` (``ros2 bag play`` republishes with it)."""
    from rosbags.interfaces import Qos, QosDurability, QosHistory, QosLiveliness, QosReliability, QosTime

    zero = QosTime(0, 0)
    return [Qos(
        history=QosHistory.UNKNOWN,
        depth=0,
        reliability=QosReliability.BEST_EFFORT if topic.best_effort else QosReliability.RELIABLE,
        durability=QosDurability.VOLATILE,
        deadline=zero,
        lifespan=zero,
        liveliness=QosLiveliness.AUTOMATIC,
        liveliness_lease_duration=zero,
        avoid_ros_namespace_conventions=False,
    )]


class TopicMonitor:
    """Counters of one topic, updated by the message thread and read by the status timer."""

    __slots__ = ("topic", "total", "late_total", "last_rx_ns", "rate_hz", "_rate_samples",
                 "lost_total", "incompatible_total", "publishers", "reader", "warned_incompatible")

    def __init__(self, topic: RecordedTopic, reader: Any = None):
        self.topic = topic
        self.total = 0
        self.late_total = 0
        self.last_rx_ns = 0
        self.rate_hz = 0.0
        self._rate_samples: deque[tuple[float, int]] = deque()
        self.lost_total = 0  # DDS sample-lost status (dds transport only)
        self.incompatible_total = 0  # publishers whose QoS this reader cannot match (dds only)
        self.publishers: int | None = None  # matched publishers (dds only)
        self.reader = reader if reader is not None and hasattr(reader, "get_sample_lost_status") else None
        self.warned_incompatible = False

    def attach_reader(self, reader: Any) -> None:
        """Use ``reader`` (a cyclonedds DataReader) for the DDS statuses; anything else is ignored."""
        self.reader = reader if reader is not None and hasattr(reader, "get_sample_lost_status") else None

    def update_rate(self, now: float) -> None:
        """Call often (every control tick): the rate is measured over the last ``RATE_WINDOW_S``."""
        samples = self._rate_samples
        if samples and now < samples[-1][0]:
            samples.clear()  # the clock went back (a bag replay restarted)
        samples.append((now, self.total))
        while len(samples) > 2 and now - samples[1][0] >= RATE_WINDOW_S:
            samples.popleft()
        t0, c0 = samples[0]
        if now - t0 >= 0.2:
            self.rate_hz = (self.total - c0) / (now - t0)

    def poll_dds(self) -> None:
        """Read the DDS reader's statuses (sample lost, incompatible QoS, matched publishers)."""
        if self.reader is None:
            return
        try:
            self.lost_total = int(self.reader.get_sample_lost_status().total_count)
            self.incompatible_total = int(self.reader.get_requested_incompatible_qos_status().total_count)
            self.publishers = int(self.reader.get_subscription_matched_status().current_count)
        except Exception:  # noqa: BLE001 - statistics only; never stop recording for them
            self.reader = None
