"""The fault injector: a node between the robot's sensor topics and the policy node's inputs.

It subscribes to the sensor topics of the robot spec and republishes every message on the
same topic under ``prefix`` (the policy node under test is given a spec whose sensors read
those topics), changed by the faults of the plan that are active at that moment. The
policy node itself is not touched: what it sees is what a faulty robot graph would send.
"""

from __future__ import annotations

import copy
from collections import deque
from typing import Any

import numpy as np

from hpt_ros.msgs.stamps import seconds_to_stamp, stamp_to_seconds
from hpt_ros.ros.transport import QOS_DEFAULT, QOS_SENSOR_DATA, Transport
from hpt_ros.spec import RobotSpec

from .faults import Fault

__all__ = ["FaultInjector", "remapped_spec"]

_RELEASE_PERIOD_S = 0.01
_NON_FINITE = {"nan": float("nan"), "inf": float("inf"), "-inf": float("-inf")}


def remapped_spec(spec: RobotSpec, prefix: str, execution: dict[str, Any] | None = None) -> RobotSpec:
    """``spec`` with each sensor's topic moved under ``prefix`` (and ``execution`` merged into its execution)."""
    from hpt_ros.spec.loader import parse_spec

    raw = copy.deepcopy(dict(spec.raw))
    for sensor in raw.get("sensors", {}).values():
        sensor["topic"] = prefix + sensor["topic"]
    if execution:
        raw["execution"] = {**raw.get("execution", {}), **execution}
    return parse_spec(raw, file=f"{spec.source} (sensor topics under {prefix})")


class FaultInjector:
    """Republishes the sensors of ``spec`` under ``prefix``, with the faults of ``plan`` applied.

    ``counts[kind]`` is how many messages each fault changed, dropped or delayed.
    """

    def __init__(self, transport: Transport, spec: RobotSpec, plan: list[Fault], prefix: str, start_time: float):
        self.transport = transport
        self.plan = plan
        self.start_time = start_time
        self.counts: dict[str, int] = {}
        self._delayed: deque[tuple[float, Any, Any]] = deque()  # (release time, publisher, message)
        self._held: dict[str, list[Any]] = {}  # out-of-order: topic -> messages held back
        self._last_camera: dict[str, float] = {}
        for sensor in spec.sensors:
            qos = QOS_SENSOR_DATA if sensor.is_image else QOS_DEFAULT
            pub = transport.create_publisher(prefix + sensor.topic, sensor.type, qos)
            transport.create_subscription(sensor.topic, sensor.type, self._forwarder(sensor, pub), qos)
        transport.create_timer(_RELEASE_PERIOD_S, self._release, group="chaos")

    def _active(self, kind: str, topic: str | None = None) -> Fault | None:
        t = self.transport.now() - self.start_time
        for fault in self.plan:
            if fault.kind == kind and fault.active(t) and (topic is None or fault.params.get("topic") in (None, topic)):
                return fault
        return None

    def _count(self, kind: str) -> None:
        self.counts[kind] = self.counts.get(kind, 0) + 1

    def _forwarder(self, sensor: Any, pub: Any):
        topic, is_image = sensor.topic, sensor.is_image

        def forward(msg: Any) -> None:
            now = self.transport.now()
            if is_image:
                msg = self._image_faults(topic, msg, now)
            else:
                msg = self._joint_state_faults(msg)
            if msg is None:
                return
            burst = self._active("burst")
            if burst is not None:  # held until the burst window closes, then all at once
                self._count("burst")
                self._delayed.append((self.start_time + burst.end, pub, msg))
                return
            late = self._active("out_of_order_stamps")
            if late is not None:
                held = self._held.setdefault(topic, [])
                held.append(msg)
                if len(held) < int(late.params.get("hold_back", 3)):
                    return
                self._count("out_of_order_stamps")
                for m in reversed(held):  # newest first, then the older stamps
                    pub.publish(m)
                held.clear()
                return
            pub.publish(msg)
            if self._active("duplicate_stamps") is not None:
                self._count("duplicate_stamps")
                pub.publish(copy.copy(msg))

        return forward

    def _image_faults(self, topic: str, msg: Any, now: float) -> Any | None:
        if self._active("camera_stall", topic) is not None:
            self._count("camera_stall")
            return None
        if self._active("camera_5hz", topic) is not None:
            if now - self._last_camera.get(topic, -1e9) < 0.2 - 1e-6:
                self._count("camera_5hz")
                return None
        self._last_camera[topic] = now
        wrong = self._active("wrong_encoding", topic)
        if wrong is not None:
            self._count("wrong_encoding")
            msg = copy.copy(msg)
            msg.encoding = str(wrong.params.get("encoding", "mono16"))
        return msg

    def _joint_state_faults(self, msg: Any) -> Any | None:
        if self._active("joint_state_stall") is not None:
            self._count("joint_state_stall")
            return None
        names, positions = list(msg.name), np.array(msg.position, dtype=np.float64)
        changed = False
        bad = self._active("state_nan")
        if bad is not None and len(positions):
            positions[int(bad.params.get("joint", 0)) % len(positions)] = _NON_FINITE[str(bad.params.get("value", "nan"))]
            self._count("state_nan")
            changed = True
        if self._active("joints_reordered") is not None:
            order = np.random.default_rng(len(names)).permutation(len(names))
            names, positions = [names[i] for i in order], positions[order]
            self._count("joints_reordered")
            changed = True
        dropped = self._active("joint_dropped")
        if dropped is not None and names:
            i = int(dropped.params.get("joint", 0)) % len(names)
            names, positions = names[:i] + names[i + 1:], np.delete(positions, i)
            self._count("joint_dropped")
            changed = True
        if not changed:
            return msg
        out = copy.deepcopy(msg)
        out.name = names
        out.position = positions if isinstance(msg.position, np.ndarray) else positions.tolist()
        for field in ("velocity", "effort"):  # keep the arrays' lengths consistent with the names
            values = np.array(getattr(msg, field), dtype=np.float64)
            if len(values) and len(values) != len(names):
                setattr(out, field, values[: len(names)] if isinstance(getattr(msg, field), np.ndarray)
                        else values[: len(names)].tolist())
        if self._active("out_of_order_stamps") is not None:  # stamps that go backwards, by design
            seconds_to_stamp(out.header.stamp, max(0.0, stamp_to_seconds(out.header.stamp) - 0.05))
        return out

    def _release(self) -> None:
        now = self.transport.now()
        while self._delayed and self._delayed[0][0] <= now:
            _, pub, msg = self._delayed.popleft()
            pub.publish(msg)
