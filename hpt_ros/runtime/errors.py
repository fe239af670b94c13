"""Exceptions raised by the runtime layer.

Observation problems (``ObservationError`` and subclasses) are what the control loop
turns into a hold: each carries ``reason``, the short, stable text used as the hold
reason (``'stale wrist_camera'``), while ``str(exc)`` is the full sentence for a log.
``SensorDataError`` is raised by ``ObservationCache.update`` for an array that can never
be used (wrong shape or dtype, unknown sensor): a bug in the caller, not a transient state.
"""

from __future__ import annotations

__all__ = [
    "InvalidSensorError",
    "MissingSensorError",
    "NoActionError",
    "ObservationError",
    "RuntimeLayerError",
    "SensorDataError",
    "StaleSensorError",
]


class RuntimeLayerError(Exception):
    """Base class of all hpt_ros.runtime errors."""


class ObservationError(RuntimeLayerError):
    """A required sensor cannot give an observation now; the policy must hold.

    Attributes:
        sensor: the sensor's name in the robot spec.
        topic: its topic.
        reason: short hold reason, stable while the cause lasts (``'stale cam'``).
    """

    def __init__(self, sensor: str, topic: str, reason: str, message: str) -> None:
        self.sensor = sensor
        self.topic = topic
        self.reason = reason
        super().__init__(message)


class StaleSensorError(ObservationError):
    """The latest message of a required sensor is older than its ``max_age``."""

    def __init__(self, sensor: str, topic: str, age: float, max_age: float) -> None:
        self.age = age
        self.max_age = max_age
        if age >= 0:
            when = f"last message {age:.3f} s ago"
        else:
            when = f"last message stamped {-age:.3f} s in the future (did the clock jump back?)"
        super().__init__(sensor, topic, f"stale {sensor}", f"sensor {sensor!r} ({topic}) is stale: {when}, "
                         f"max_age {max_age:g} s")  # fmt: skip


class MissingSensorError(ObservationError):
    """A required sensor has not delivered any message yet."""

    def __init__(self, sensor: str, topic: str) -> None:
        super().__init__(sensor, topic, f"missing {sensor}", f"sensor {sensor!r} ({topic}): no message received yet")


class InvalidSensorError(ObservationError):
    """The latest message of a sensor holds values the policy must not use (NaN/inf joints)."""

    def __init__(self, sensor: str, topic: str, detail: str) -> None:
        self.detail = detail
        super().__init__(sensor, topic, f"invalid {sensor}", f"sensor {sensor!r} ({topic}): {detail}")


class SensorDataError(RuntimeLayerError, ValueError):
    """``ObservationCache.update`` got an array that does not fit the sensor (or an unknown sensor)."""


class NoActionError(RuntimeLayerError, LookupError):
    """An executor holds no prediction for the requested tick (no chunk covers it)."""
