"""geometry_msgs / std_msgs numeric messages -> float64 numpy vectors (for observations).

* PoseStamped / Pose -> [x, y, z, qx, qy, qz, qw]
* TwistStamped / Twist -> [vx, vy, vz, wx, wy, wz]
* Float64MultiArray -> data (after ``layout.data_offset``)

NaN or infinite values raise :class:`MessageConversionError` naming the topic and type.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .errors import MessageConversionError

__all__ = ["float64_multi_array_to_array", "pose_to_array", "twist_to_array"]


def _checked(values: np.ndarray, topic: str, msg_type: str, labels: tuple[str, ...] | None = None) -> np.ndarray:
    finite = np.isfinite(values)
    if not finite.all():
        bad = np.flatnonzero(~finite)
        names = [labels[i] if labels else f"data[{i}]" for i in bad]
        raise MessageConversionError(topic, msg_type, f"non-finite value(s) in {', '.join(names)}")
    return values


def pose_to_array(msg: Any, topic: str = "<unknown>") -> np.ndarray:
    """[x, y, z, qx, qy, qz, qw] of a PoseStamped (or a Pose)."""
    pose = getattr(msg, "pose", msg)
    p, q = pose.position, pose.orientation
    values = np.array([p.x, p.y, p.z, q.x, q.y, q.z, q.w], dtype=np.float64)
    msg_type = "geometry_msgs/msg/PoseStamped" if pose is not msg else "geometry_msgs/msg/Pose"
    return _checked(values, topic, msg_type, ("x", "y", "z", "qx", "qy", "qz", "qw"))


def twist_to_array(msg: Any, topic: str = "<unknown>") -> np.ndarray:
    """[vx, vy, vz, wx, wy, wz] of a TwistStamped (or a Twist)."""
    twist = getattr(msg, "twist", msg)
    lin, ang = twist.linear, twist.angular
    values = np.array([lin.x, lin.y, lin.z, ang.x, ang.y, ang.z], dtype=np.float64)
    msg_type = "geometry_msgs/msg/TwistStamped" if twist is not msg else "geometry_msgs/msg/Twist"
    return _checked(values, topic, msg_type, ("vx", "vy", "vz", "wx", "wy", "wz"))


def float64_multi_array_to_array(msg: Any, topic: str = "<unknown>") -> np.ndarray:
    """The data of a Float64MultiArray from ``layout.data_offset`` on, as a new float64 array."""
    msg_type = "std_msgs/msg/Float64MultiArray"
    data = np.asarray(msg.data, dtype=np.float64)
    offset = int(msg.layout.data_offset)
    if offset > data.shape[0]:
        raise MessageConversionError(topic, msg_type, f"layout.data_offset {offset} exceeds the {data.shape[0]} values")
    return _checked(np.array(data[offset:]), topic, msg_type)
