"""Actions of a recording: where they are read from, how command messages decode into the
action vector, how gaps before the first command are filled, and target chunks."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from hpt_ros.spec import RobotSpec

__all__ = ["ActionDecoder", "ActionSource", "action_chunks", "fill_actions"]


@dataclass(frozen=True)
class ActionSource:
    """Where the action of a tick is read from: an arm topic and an optional gripper topic."""

    topic: str
    type: str
    gripper_topic: str | None = None
    gripper_type: str | None = None

    @classmethod
    def from_spec(
        cls,
        spec: RobotSpec,
        topic: str | None = None,
        msg_type: str | None = None,
        gripper_topic: str | None = None,
        gripper_type: str | None = None,
    ) -> ActionSource:
        """The spec's command (+ gripper) topics, or the given ones (``gripper_topic=""``: none)."""
        g = spec.action.gripper
        if gripper_topic is None:
            gripper_topic = g.topic if g is not None else None
            gripper_type = gripper_type or (g.type if g is not None else None)
        elif gripper_topic == "":
            gripper_topic, gripper_type = None, None
        else:
            gripper_type = gripper_type or (g.type if g is not None else "std_msgs/msg/Float64MultiArray")
        return cls(topic or spec.action.command.topic, msg_type or spec.action.command.type,
                   gripper_topic, gripper_type)

    def describe(self) -> dict[str, Any]:
        return {"topic": self.topic, "type": self.type, "gripper_topic": self.gripper_topic,
                "gripper_type": self.gripper_type}


def _quaternion_to_rpy(qx: float, qy: float, qz: float, qw: float) -> tuple[float, float, float]:
    """Inverse of the policy node's roll/pitch/yaw -> quaternion (ZYX, intrinsic)."""
    roll = math.atan2(2 * (qw * qx + qy * qz), 1 - 2 * (qx * qx + qy * qy))
    pitch = math.asin(max(-1.0, min(1.0, 2 * (qw * qy - qz * qx))))
    yaw = math.atan2(2 * (qw * qz + qx * qy), 1 - 2 * (qy * qy + qz * qz))
    return roll, pitch, yaw


class ActionDecoder:
    """Decoded action messages -> (indices, values) into the action vector."""

    def __init__(self, spec: RobotSpec, source: ActionSource) -> None:
        action = spec.action
        self.spec = spec
        self.source = source
        self.dim = action.dim
        self.index = {j: i for i, j in enumerate(action.joints)}
        self.arm_index = np.array([self.index[j] for j in action.arm_joints], dtype=np.intp) \
            if action.kind == "joint_position" else np.arange(6)
        if action.kind == "joint_position":
            self.gripper_index = self.index.get(action.gripper.joint) if action.gripper else None
        else:
            self.gripper_index = 6 if action.gripper else None

    def _by_name(self, names: Sequence[str], values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
        pairs = [(self.index[n], v) for n, v in zip(names, values) if n in self.index]
        if not pairs:
            return np.zeros(0, np.intp), np.zeros(0)
        idx, vals = zip(*pairs)
        return np.asarray(idx, np.intp), np.asarray(vals, np.float64)

    def arm(self, msg: Any, msg_type: str) -> tuple[np.ndarray, np.ndarray]:
        kind = self.spec.action.kind
        if msg_type.endswith("JointTrajectory"):
            if not len(msg.points):
                return np.zeros(0, np.intp), np.zeros(0)
            return self._by_name(list(msg.joint_names), list(msg.points[-1].positions))
        if msg_type.endswith("JointState"):
            return self._by_name(list(msg.name), list(msg.position))
        if msg_type.endswith("Float64MultiArray"):
            data = np.asarray(msg.data, np.float64)[int(msg.layout.data_offset):]
            n = len(self.arm_index)
            if data.shape[0] < n:
                raise ValueError(f"{data.shape[0]} values, the action needs {n}")
            return self.arm_index, data[:n]
        if msg_type.endswith("PoseStamped") and kind == "ee_pose":
            p, q = msg.pose.position, msg.pose.orientation
            return np.arange(6), np.array([p.x, p.y, p.z, *_quaternion_to_rpy(q.x, q.y, q.z, q.w)])
        if msg_type.endswith("TwistStamped") and kind == "ee_twist":
            lin, ang = msg.twist.linear, msg.twist.angular
            return np.arange(6), np.array([lin.x, lin.y, lin.z, ang.x, ang.y, ang.z])
        raise ValueError(f"cannot read a {kind} action from {msg_type}")

    def gripper(self, msg: Any, msg_type: str) -> tuple[np.ndarray, np.ndarray]:
        if self.gripper_index is None:
            return np.zeros(0, np.intp), np.zeros(0)
        if msg_type.endswith("Float64MultiArray"):
            data = np.asarray(msg.data, np.float64)[int(msg.layout.data_offset):]
        elif msg_type.endswith("JointState"):
            names = list(msg.name)
            joint = self.spec.action.gripper.joint if self.spec.action.gripper else ""
            data = np.asarray([msg.position[names.index(joint)]] if joint in names else list(msg.position)[:1])
        else:
            raise ValueError(f"cannot read a gripper command from {msg_type}")
        if data.shape[0] < 1:
            return np.zeros(0, np.intp), np.zeros(0)
        return np.array([self.gripper_index], np.intp), data[:1].astype(np.float64)


def fill_actions(actions: np.ndarray, measured: np.ndarray, spec: RobotSpec) -> np.ndarray:
    """Fill NaN action entries (before the first command of a dimension) as documented above.

    Raises ``ValueError`` naming the dimension when one was never recorded and cannot be
    taken from the state.
    """
    actions = actions.copy()
    state_pos = {j: i for i, j in enumerate(spec.state_joints)}
    for d in range(actions.shape[1]):
        missing = np.isnan(actions[:, d])
        if not missing.any():
            continue
        joint = spec.action.joints[d] if d < len(spec.action.joints) else f"dim {d}"
        if spec.action.kind == "joint_position" and joint in state_pos:
            actions[missing, d] = measured[missing, state_pos[joint]]
            missing = np.isnan(actions[:, d])
        if missing.any():
            recorded = np.flatnonzero(~np.isnan(actions[:, d]))
            if not len(recorded):
                raise ValueError(f"action dimension {d} ({joint}) is never recorded")
            actions[missing, d] = actions[recorded[0], d]
    return actions


def action_chunks(actions: np.ndarray, ticks: np.ndarray, horizon: int) -> np.ndarray:
    """Chunks [len(ticks), horizon, A]: ``actions[t + i]``, the last action repeated past the end."""
    n = actions.shape[0]
    index = np.minimum(np.asarray(ticks)[:, None] + np.arange(horizon)[None, :], n - 1)
    return actions[index]
