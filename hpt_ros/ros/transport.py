"""The small interface every node is written against.

A transport carries ROS 2 messages and owns the clock. Implementations:

* ``rclpy``  – a real ROS 2 install (``hpt_ros.ros.rclpy_transport``; the only
  module that imports rclpy).
* ``dds``    – pure-pip Cyclone DDS, wire-compatible with ROS 2
  (``hpt_ros.ros.dds``).
* ``replay`` – drives the same nodes from a bag on a simulated clock
  (``hpt_ros.ros.replay``).

Messages are plain objects with ROS 2 field names. ``new_message(type_name)``
returns a default-initialised message of the transport's own kind (rclpy
message, IDL struct, rosbags dataclass); conversion code in
``hpt_ros.msgs.messages`` fills it by field name, so one conversion serves all.
"""

from __future__ import annotations

import abc
import enum
import logging
from dataclasses import dataclass
from typing import Any, Callable

from hpt_ros.msgs import names
from hpt_ros.msgs.errors import InvalidNameError

__all__ = [
    "Durability",
    "QoSProfile",
    "Reliability",
    "QOS_DEFAULT",
    "QOS_SENSOR_DATA",
    "QOS_LATCHED",
    "RAW_MIN_DEPTH",
    "Publisher",
    "Subscription",
    "Timer",
    "Transport",
    "TransportError",
    "validate_node_name",
    "validate_topic_name",
]


class TransportError(RuntimeError):
    """A transport could not be created or used (names the topic or node)."""


class Reliability(enum.Enum):
    RELIABLE = "reliable"
    BEST_EFFORT = "best_effort"


class Durability(enum.Enum):
    VOLATILE = "volatile"
    TRANSIENT_LOCAL = "transient_local"


@dataclass(frozen=True)
class QoSProfile:
    """The subset of ROS 2 QoS the package sets explicitly (history is keep-last)."""

    depth: int = 10
    reliability: Reliability = Reliability.RELIABLE
    durability: Durability = Durability.VOLATILE


# rclpy.qos.qos_profile_system_default / qos_profile_sensor_data equivalents.
QOS_DEFAULT = QoSProfile(10, Reliability.RELIABLE, Durability.VOLATILE)
QOS_SENSOR_DATA = QoSProfile(5, Reliability.BEST_EFFORT, Durability.VOLATILE)
QOS_LATCHED = QoSProfile(1, Reliability.RELIABLE, Durability.TRANSIENT_LOCAL)

#: Minimum reader history of a ``raw=True`` subscription (1 s of a 1 kHz topic): a recorder
#: whose callbacks fall behind for a moment must not lose what keep-last would overwrite.
RAW_MIN_DEPTH = 1000


class Publisher(abc.ABC):
    topic: str
    msg_type: str

    @abc.abstractmethod
    def publish(self, msg: Any) -> None:
        """Send a message of the transport's kind, any object with the ROS 2 field
        names, or CDR bytes (with the 4-byte encapsulation header)."""


class Subscription(abc.ABC):
    topic: str
    msg_type: str

    def destroy(self) -> None:  # pragma: no cover - optional
        pass


class Timer(abc.ABC):
    @abc.abstractmethod
    def cancel(self) -> None: ...


Callback = Callable[[Any], None]


class Transport(abc.ABC):
    """What a node may use: pub/sub, timers, clock, parameters, logging."""

    #: "rclpy", "dds" or "replay"
    kind: str = "abstract"

    def __init__(self, node_name: str, parameters: dict[str, Any] | None = None):
        validate_node_name(node_name)
        self.node_name = node_name
        self._parameters: dict[str, Any] = dict(parameters or {})
        self.logger = logging.getLogger(f"hpt_ros.{node_name}")

    # -- messages ---------------------------------------------------------
    @abc.abstractmethod
    def new_message(self, msg_type: str) -> Any:
        """A default-initialised message of ``msg_type`` ('sensor_msgs/msg/Image')."""

    # -- graph ------------------------------------------------------------
    @abc.abstractmethod
    def create_publisher(self, topic: str, msg_type: str, qos: QoSProfile = QOS_DEFAULT) -> Publisher: ...

    @abc.abstractmethod
    def create_subscription(
        self,
        topic: str,
        msg_type: str,
        callback: Callback,
        qos: QoSProfile = QOS_DEFAULT,
        *,
        raw: bool = False,
    ) -> Subscription:
        """Subscribe; with ``raw=True`` the callback receives the CDR bytes
        (with the 4-byte encapsulation header, as rosbag2 stores them)."""

    @abc.abstractmethod
    def create_timer(self, period_s: float, callback: Callable[[], None], *, group: str = "control") -> Timer:
        """Periodic callback on the transport's clock. ``group`` keeps heavy
        work (``"control"``) apart from message callbacks."""

    # -- clock ------------------------------------------------------------
    @abc.abstractmethod
    def now(self) -> float:
        """Seconds on the transport's clock (wall, ROS time or bag time)."""

    # -- parameters -------------------------------------------------------
    def declare_parameter(self, name: str, default: Any, description: str = "") -> Any:
        """Declare a parameter and return its value (override or default)."""
        return self._parameters.setdefault(name, default)

    # -- life cycle -------------------------------------------------------
    @property
    def is_shut_down(self) -> bool:
        """True once ``shutdown()`` was called."""
        return False

    @abc.abstractmethod
    def spin(self, duration_s: float | None = None, until: Callable[[], bool] | None = None) -> None:
        """Run callbacks until shutdown, ``duration_s`` elapsed, or ``until()``.

        Callbacks run only while spinning; an exception raised in one stops the spin and
        is raised again here (as rclpy does)."""

    @abc.abstractmethod
    def shutdown(self) -> None: ...

    def __enter__(self) -> "Transport":
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()


def validate_node_name(name: str) -> str:
    """The ROS 2 node name rule of :mod:`hpt_ros.msgs.names`, raising :class:`TransportError`."""
    try:
        return names.validate_node_name(name)
    except InvalidNameError as exc:
        raise TransportError(str(exc)) from None


def validate_topic_name(topic: str) -> str:
    """The ROS 2 topic name rule of :mod:`hpt_ros.msgs.names`, raising :class:`TransportError`."""
    try:
        return names.validate_topic_name(topic)
    except InvalidNameError as exc:
        raise TransportError(str(exc)) from None
