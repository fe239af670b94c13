"""Action vectors from command messages: the recorded ones in a bag and the ones a policy publishes.

Both sides go through the same functions, so a predicted and a recorded action are
compared in the same units and layout: the spec's action vector (``spec.action.joints``
for ``joint_position``; ``x y z roll pitch yaw`` or ``vx vy vz wx wy wz`` for the
end-effector kinds, gripper last).

* ``JointTrajectory``: the LAST point's ``positions``, matched to the arm joints by
  ``joint_names`` (the fake robot follows the last point too; the policy node sends one);
* ``Float64MultiArray``: ``data`` in ``action.arm_joints`` order;
* ``JointState``: ``position`` of the arm joints, by name;
* ``PoseStamped``: position and the quaternion as roll-pitch-yaw (ZYX, the inverse of
  the policy node's conversion); ``TwistStamped``: linear and angular;
* gripper: ``Float64MultiArray`` ``data[0]`` or ``JointState`` position of the gripper joint.

A recorded action at time ``t`` is a step function: the latest message at or before ``t``
(bag receive timestamps), per stream (arm command, gripper).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpt_ros.msgs import messages
from hpt_ros.msgs.errors import MessageConversionError
from hpt_ros.spec.schema import RobotSpec

__all__ = [
    "ActionLayout",
    "ActionSeries",
    "arm_command_to_vector",
    "gripper_to_value",
    "quaternion_to_rpy",
]


@dataclass(frozen=True)
class ActionLayout:
    """Where each part of a command goes in the spec's action vector, and its limits."""

    labels: tuple[str, ...]
    arm_index: np.ndarray  # positions of the arm command's values in the action vector
    gripper_index: int | None
    angle: np.ndarray  # bool [dim]: compared on the circle (ee_pose roll pitch yaw)
    lower: np.ndarray  # float64 [dim], NaN where the spec has no limit
    upper: np.ndarray

    @property
    def dim(self) -> int:
        return len(self.labels)

    @property
    def span(self) -> np.ndarray:
        """upper - lower (NaN where unknown): the normalised range [-1, 1] is this wide."""
        return self.upper - self.lower

    @classmethod
    def of(cls, spec: RobotSpec) -> ActionLayout:
        action = spec.action
        if action.kind == "joint_position":
            labels = tuple(action.joints)
            arm_index = np.array([action.joints.index(j) for j in action.arm_joints], dtype=np.intp)
            gripper = action.joints.index(action.gripper.joint) if action.gripper else None
        else:
            axes = ("x", "y", "z", "roll", "pitch", "yaw") if action.kind == "ee_pose" else (
                "vx", "vy", "vz", "wx", "wy", "wz")
            labels = axes + ((action.gripper.joint,) if action.gripper else ())
            arm_index = np.arange(6, dtype=np.intp)
            gripper = 6 if action.gripper else None
        angle = np.zeros(len(labels), dtype=bool)
        if action.kind == "ee_pose":
            angle[3:6] = True
        lower = np.full(len(labels), np.nan)
        upper = np.full(len(labels), np.nan)
        for i, name in enumerate(labels):
            limit = spec.limits.get(name)
            if limit is not None and (action.kind == "joint_position" or i == gripper):
                lower[i], upper[i] = limit.lower, limit.upper
        return cls(labels, arm_index, gripper, angle, lower, upper)

    def difference(self, a: np.ndarray, b: np.ndarray) -> np.ndarray:
        """a - b, with angle dims wrapped to [-pi, pi)."""
        diff = np.asarray(a, np.float64) - np.asarray(b, np.float64)
        if self.angle.any():
            diff[..., self.angle] = (diff[..., self.angle] + math.pi) % (2 * math.pi) - math.pi
        return diff


def quaternion_to_rpy(x: float, y: float, z: float, w: float) -> np.ndarray:
    """Roll, pitch, yaw (ZYX) of a quaternion (normalised first)."""
    n = math.sqrt(x * x + y * y + z * z + w * w)
    if n < 1e-12:
        raise ValueError("zero-length quaternion")
    x, y, z, w = x / n, y / n, z / n, w / n
    roll = math.atan2(2 * (w * x + y * z), 1 - 2 * (x * x + y * y))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (w * y - z * x))))
    yaw = math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))
    return np.array([roll, pitch, yaw])


def _by_name(names: Sequence[str], values: Any, wanted: Sequence[str], topic: str, msg_type: str) -> np.ndarray:
    values = np.asarray(values, dtype=np.float64).reshape(-1)
    names = [str(n) for n in names]
    if len(names) != values.shape[0]:
        raise MessageConversionError(topic, msg_type, f"{len(names)} joint names but {values.shape[0]} positions")
    index = {n: i for i, n in enumerate(names)}
    missing = [j for j in wanted if j not in index]
    if missing:
        raise MessageConversionError(topic, msg_type, f"missing joint(s) {', '.join(missing)}; the message has: "
                                     f"{', '.join(names) or '(none)'}")  # fmt: skip
    out = values[[index[j] for j in wanted]]
    if not np.isfinite(out).all():
        raise MessageConversionError(topic, msg_type, f"non-finite positions: {out.tolist()}")
    return out


def arm_command_to_vector(msg: Any, spec: RobotSpec, topic: str | None = None) -> np.ndarray:
    """The arm part of a command message (the spec's command type) as float64, in layout order."""
    action = spec.action
    msg_type = action.command.type
    topic = topic or action.command.topic
    if msg_type.endswith("JointTrajectory"):
        points = list(msg.points)
        if not points:
            raise MessageConversionError(topic, msg_type, "trajectory without points")
        return _by_name(msg.joint_names, points[-1].positions, action.arm_joints, topic, msg_type)
    if msg_type.endswith("Float64MultiArray"):
        values = messages.float64_multi_array_to_array(msg, topic=topic)
        want = len(action.arm_joints) if action.kind == "joint_position" else 6
        if values.shape[0] != want:
            raise MessageConversionError(topic, msg_type, f"{values.shape[0]} values, the spec's arm command has {want}")
        return values
    if msg_type.endswith("JointState"):
        return messages.joint_state_to_array(msg, action.arm_joints, topic=topic)
    if msg_type.endswith("PoseStamped"):
        pose = messages.pose_to_array(msg, topic=topic)
        try:
            rpy = quaternion_to_rpy(*pose[3:7])
        except ValueError as exc:
            raise MessageConversionError(topic, msg_type, str(exc)) from None
        return np.concatenate([pose[:3], rpy])
    if msg_type.endswith("TwistStamped"):
        return messages.twist_to_array(msg, topic=topic)
    raise MessageConversionError(topic, msg_type, "not a command type the evaluation can read")


def gripper_to_value(msg: Any, spec: RobotSpec, topic: str | None = None) -> float:
    """The gripper target of a gripper command message (the spec's gripper type)."""
    gripper = spec.action.gripper
    if gripper is None:
        raise ValueError(f"robot spec {spec.name!r} has no gripper")
    topic = topic or gripper.topic
    if gripper.type.endswith("Float64MultiArray"):
        values = messages.float64_multi_array_to_array(msg, topic=topic)
        if values.shape[0] < 1:
            raise MessageConversionError(topic, gripper.type, "no value")
        return float(values[0])
    return float(messages.joint_state_to_array(msg, [gripper.joint], topic=topic)[0])


class ActionSeries:
    """A recorded stream of values with their times; sampled as "latest at or before"."""

    def __init__(self, topic: str, times_ns: Sequence[int], values: Sequence[np.ndarray] | np.ndarray, width: int):
        self.topic = topic
        self.times_ns = np.asarray(times_ns, dtype=np.int64).reshape(-1)
        self.values = np.asarray(values, dtype=np.float64).reshape(len(self.times_ns), width)
        if len(self.times_ns) > 1 and np.any(np.diff(self.times_ns) < 0):
            order = np.argsort(self.times_ns, kind="stable")
            self.times_ns, self.values = self.times_ns[order], self.values[order]

    def __len__(self) -> int:
        return len(self.times_ns)

    def at(self, times_ns: np.ndarray) -> np.ndarray:
        """float64 [len(times), width]: the latest value at or before each time (NaN before the first)."""
        times_ns = np.asarray(times_ns, dtype=np.int64)
        index = np.searchsorted(self.times_ns, times_ns, side="right") - 1
        out = np.full((len(times_ns), self.values.shape[1]), np.nan)
        ok = index >= 0
        out[ok] = self.values[index[ok]]
        return out
