"""Franka FR3 forward kinematics, Jacobian and a damped-least-squares IK step.

Franka's published modified (Craig) Denavit-Hartenberg parameters; each link's frame
follows from the previous one by

    T_i = RotX(alpha_i) @ TransX(a_i) @ RotZ(theta_i) @ TransZ(d_i)

with ``theta_i = q_i`` for the seven joints and 0 for the flange (``dh_transform`` comes from
``hpt_ros.runtime.kinematics``; config/robots/franka_fr3.yaml carries the same rows). The Franka Hand's TCP
(the centre between the finger tips) sits 0.1034 m along the flange z axis, rotated
-pi/4 about it. The base frame is the world frame: x forward, z up, origin at the foot
of the robot on the table.

Figures these parameters give (checked by ``test/test_sim_kinematics.py``):

- all zeros: flange at (0.088, 0, 0.926) m (0.333 + 0.316 + 0.384 - 0.107 in z; the
  flange points straight down), TCP at (0.088, 0, 0.8226) m;
- ``READY_POSE`` [0, -pi/4, 0, -3pi/4, 0, pi/2, pi/4]: flange at (0.3069, 0, 0.5903) m,
  TCP at (0.3069, 0, 0.4869) m, the tool z axis pointing straight down.
"""

from __future__ import annotations

import math
from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

# one DH implementation: the runtime's workspace check computes the TCP from the spec with it
from hpt_ros.runtime.kinematics import dh_transform

__all__ = [
    "DH_PARAMS",
    "FLANGE_INDEX",
    "HAND_TCP_OFFSET",
    "HAND_TCP_YAW",
    "READY_POSE",
    "TCP_INDEX",
    "dh_transform",
    "forward_kinematics",
    "ik_step",
    "jacobian",
    "tcp_pose",
    "tcp_position",
]

#: (a, d, alpha) per joint J1..J7, then the flange (theta fixed at 0) [m, m, rad]
DH_PARAMS: tuple[tuple[float, float, float], ...] = (
    (0.0, 0.333, 0.0),
    (0.0, 0.0, -math.pi / 2),
    (0.0, 0.316, math.pi / 2),
    (0.0825, 0.0, math.pi / 2),
    (-0.0825, 0.384, -math.pi / 2),
    (0.0, 0.0, math.pi / 2),
    (0.088, 0.0, math.pi / 2),
    (0.0, 0.107, 0.0),
)
HAND_TCP_OFFSET = 0.1034  # [m] along the flange z axis
HAND_TCP_YAW = -math.pi / 4  # [rad] about the flange z axis

#: Franka's "ready" configuration (the franka_ros2 start pose)
READY_POSE: NDArray[np.float64] = np.array(
    [0.0, -math.pi / 4, 0.0, -3 * math.pi / 4, 0.0, math.pi / 2, math.pi / 4]
)

#: indices into ``forward_kinematics``' list: [base, J1..J7, flange, tcp]
FLANGE_INDEX = 8
TCP_INDEX = 9


def _hand_transform() -> NDArray[np.float64]:
    c, s = math.cos(HAND_TCP_YAW), math.sin(HAND_TCP_YAW)
    t = np.eye(4)
    t[:2, :2] = [[c, -s], [s, c]]
    t[2, 3] = HAND_TCP_OFFSET
    return t


_HAND = _hand_transform()


def _as_q7(q7: ArrayLike) -> NDArray[np.float64]:
    q = np.asarray(q7, dtype=np.float64).reshape(-1)
    if q.shape[0] < 7:
        raise ValueError(f"need 7 arm joint positions, got {q.shape[0]}")
    return q[:7]


def forward_kinematics(q7: ArrayLike) -> list[NDArray[np.float64]]:
    """World frames [base, J1..J7, flange, tcp] (10 4x4 matrices) for the 7 arm joints.

    Frame i (1..7) is the frame joint i rotates about (its z axis). Extra entries of
    ``q7`` (finger positions) are ignored.
    """
    q = _as_q7(q7)
    frames = [np.eye(4)]
    t = frames[0]
    for i, (a, d, alpha) in enumerate(DH_PARAMS):
        theta = float(q[i]) if i < 7 else 0.0
        t = t @ dh_transform(a, d, alpha, theta)
        frames.append(t)
    frames.append(t @ _HAND)
    return frames


def tcp_pose(q7: ArrayLike) -> NDArray[np.float64]:
    """The 4x4 world pose of the hand's TCP."""
    return forward_kinematics(q7)[TCP_INDEX]


def tcp_position(q7: ArrayLike) -> NDArray[np.float64]:
    """The TCP's world position (x, y, z) [m]."""
    return tcp_pose(q7)[:3, 3].copy()


def jacobian(q7: ArrayLike, frames: Sequence[NDArray[np.float64]] | None = None) -> NDArray[np.float64]:
    """Geometric 6x7 Jacobian of the TCP: rows vx vy vz wx wy wz (world frame).

    Column i is ``[z_i x (p_tcp - p_i); z_i]`` with z_i, p_i the axis and origin of
    joint i's frame. Pass ``frames`` (from ``forward_kinematics``) to skip recomputing them.
    """
    if frames is None:
        frames = forward_kinematics(q7)
    p_tcp = frames[TCP_INDEX][:3, 3]
    jac = np.empty((6, 7))
    for i in range(7):
        z = frames[i + 1][:3, 2]
        jac[:3, i] = np.cross(z, p_tcp - frames[i + 1][:3, 3])
        jac[3:, i] = z
    return jac


def ik_step(
    q7: ArrayLike,
    target_xyz: ArrayLike,
    gain: float = 1.0,
    damping: float = 0.05,
    *,
    orientation_weight: float = 0.5,
    tool_axis: ArrayLike | None = (0.0, 0.0, -1.0),
    posture: ArrayLike | None = None,
    posture_gain: float = 0.0,
) -> NDArray[np.float64]:
    """One damped-least-squares step: the joint change dq (7,) that moves the TCP toward ``target_xyz``.

    Solves ``min |J dq - e|^2 + damping^2 |dq|^2`` with ``e`` the TCP position error
    times ``gain`` stacked with, if ``tool_axis`` is given (default: straight down), an
    orientation error ``z_tool x tool_axis`` weighted by ``orientation_weight`` that
    keeps the tool z axis on that direction (rotation about it is left free).
    ``posture`` (7,) with ``posture_gain`` > 0 adds a pull toward that configuration in
    the task's null space. Joint limits are not known here: clamp the result.
    """
    q = _as_q7(q7)
    frames = forward_kinematics(q)
    jac = jacobian(q, frames)
    err_p = gain * (np.asarray(target_xyz, dtype=np.float64) - frames[TCP_INDEX][:3, 3])
    if tool_axis is not None and orientation_weight > 0:
        axis = np.asarray(tool_axis, dtype=np.float64)
        axis = axis / np.linalg.norm(axis)
        err_o = gain * np.cross(frames[TCP_INDEX][:3, 2], axis)
        j = np.vstack([jac[:3], orientation_weight * jac[3:]])
        e = np.concatenate([err_p, orientation_weight * err_o])
    else:
        j, e = jac[:3], err_p
    jjt = j @ j.T + (damping**2) * np.eye(j.shape[0])
    dq = j.T @ np.linalg.solve(jjt, e)
    if posture is not None and posture_gain > 0:
        pinv = j.T @ np.linalg.inv(jjt)
        null = np.eye(7) - pinv @ j
        dq = dq + null @ (posture_gain * (np.asarray(posture, dtype=np.float64)[:7] - q))
    return dq
