"""Forward kinematics of a serial arm from modified (Craig) Denavit-Hartenberg rows.

Each row ``(a, d, alpha)`` moves the frame by ``RotX(alpha) TransX(a) RotZ(theta) TransZ(d)``;
the first ``len(joints)`` rows turn with their joint (``theta = q``), later rows are
fixed (``theta = 0``, e.g. a flange). A fixed tool transform (``xyz``, roll-pitch-yaw)
follows the last row and gives the tool centre point (TCP). The base frame is that of the
first row. ``DHChain.from_spec`` builds one from a robot spec's ``workspace.kinematics``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = ["DHChain", "dh_transform", "rpy_from_matrix", "rpy_matrix"]


def dh_transform(a: float, d: float, alpha: float, theta: float) -> NDArray[np.float64]:
    """RotX(alpha) TransX(a) RotZ(theta) TransZ(d) as one 4x4 homogeneous matrix."""
    ca, sa = math.cos(alpha), math.sin(alpha)
    ct, st = math.cos(theta), math.sin(theta)
    return np.array(
        [
            [ct, -st, 0.0, a],
            [st * ca, ct * ca, -sa, -d * sa],
            [st * sa, ct * sa, ca, d * ca],
            [0.0, 0.0, 0.0, 1.0],
        ]
    )


def rpy_matrix(roll: float, pitch: float, yaw: float) -> NDArray[np.float64]:
    """Rz(yaw) Ry(pitch) Rx(roll): the rotation that roll-pitch-yaw (ROS's convention) describes."""
    cr, sr = math.cos(roll), math.sin(roll)
    cp, sp = math.cos(pitch), math.sin(pitch)
    cy, sy = math.cos(yaw), math.sin(yaw)
    return np.array(
        [
            [cy * cp, cy * sp * sr - sy * cr, cy * sp * cr + sy * sr],
            [sy * cp, sy * sp * sr + cy * cr, sy * sp * cr - cy * sr],
            [-sp, cp * sr, cp * cr],
        ]
    )


def rpy_from_matrix(rotation: ArrayLike) -> NDArray[np.float64]:
    """(roll, pitch, yaw) of a rotation matrix, inverse of ``rpy_matrix`` (pitch in [-pi/2, pi/2])."""
    r = np.asarray(rotation, dtype=np.float64)
    pitch = math.asin(max(-1.0, min(1.0, -r[2, 0])))
    if abs(r[2, 0]) < 1.0 - 1e-9:
        roll = math.atan2(r[2, 1], r[2, 2])
        yaw = math.atan2(r[1, 0], r[0, 0])
    else:  # gimbal lock: only roll - yaw (or roll + yaw) is defined; put it all in yaw
        roll = 0.0
        yaw = math.atan2(-r[0, 1], r[1, 1])
    return np.array([roll, pitch, yaw])


@dataclass(frozen=True)
class DHChain:
    """A serial chain: ``rows`` (a, d, alpha), the first ``num_joints`` turning, then a tool transform."""

    rows: tuple[tuple[float, float, float], ...]
    num_joints: int
    tool: NDArray[np.float64]  # 4x4, last row frame -> TCP

    def __post_init__(self) -> None:
        if not 0 < self.num_joints <= len(self.rows):
            raise ValueError(f"a chain of {len(self.rows)} DH rows cannot have {self.num_joints} joints")

    @classmethod
    def build(cls, rows: Sequence[Sequence[float]], num_joints: int, tool_xyz: Sequence[float] = (0.0, 0.0, 0.0),
              tool_rpy: Sequence[float] = (0.0, 0.0, 0.0)) -> DHChain:
        tool = np.eye(4)
        tool[:3, :3] = rpy_matrix(*(float(v) for v in tool_rpy))
        tool[:3, 3] = [float(v) for v in tool_xyz]
        return cls(tuple(tuple(float(v) for v in row) for row in rows), int(num_joints), tool)  # type: ignore[misc]

    @classmethod
    def from_spec(cls, kinematics) -> DHChain:
        """From a ``hpt_ros.spec.schema.KinematicsSpec``."""
        return cls.build(kinematics.dh, len(kinematics.joints), kinematics.tool_xyz, kinematics.tool_rpy)

    def frames(self, q: ArrayLike) -> list[NDArray[np.float64]]:
        """Base-frame poses [base, row 1 .. row N, tcp] (4x4 each) for joint positions ``q``."""
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        if q.shape[0] < self.num_joints:
            raise ValueError(f"need {self.num_joints} joint positions, got {q.shape[0]}")
        t = np.eye(4)
        out = [t]
        for i, (a, d, alpha) in enumerate(self.rows):
            t = t @ dh_transform(a, d, alpha, float(q[i]) if i < self.num_joints else 0.0)
            out.append(t)
        out.append(t @ self.tool)
        return out

    def tcp_pose(self, q: ArrayLike) -> NDArray[np.float64]:
        """4x4 base-frame pose of the TCP."""
        return self.frames(q)[-1]

    def tcp_position(self, q: ArrayLike) -> NDArray[np.float64]:
        return self.tcp_pose(q)[:3, 3].copy()

    def tcp_xyz_rpy(self, q: ArrayLike) -> NDArray[np.float64]:
        """TCP as ``x y z roll pitch yaw`` (the ee_pose action layout)."""
        pose = self.tcp_pose(q)
        return np.concatenate([pose[:3, 3], rpy_from_matrix(pose[:3, :3])])
