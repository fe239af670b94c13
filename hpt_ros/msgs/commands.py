"""Fill command and status messages from numbers, for any message flavour (and read status back).

Each ``fill_*`` takes a message (from ``transport.new_message(...)``, an rclpy message or
a rosbags dataclass), sets its fields by ROS 2 name and returns it. Numbers that go to a
robot are checked: NaN/inf raise :class:`MessageConversionError` (never sent). Stamps
are seconds on the transport's clock (``transport.now()``).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ._flavours import new_element, set_byte, set_number_array
from .errors import MessageConversionError
from .stamps import seconds_to_stamp

__all__ = [
    "DiagnosticStatusTuple",
    "fill_bool",
    "diagnostic_values",
    "json_object",
    "fill_diagnostic_array",
    "fill_float64_multi_array",
    "fill_joint_state",
    "fill_joint_trajectory",
    "fill_pose_stamped",
    "fill_twist_stamped",
]

#: (name, level, message, hardware_id, key/values) of one diagnostic_msgs/DiagnosticStatus.
DiagnosticStatusTuple = tuple[str, int, str, str, Mapping[str, str]]


def _finite_vector(values: Any, length: int | None, what: str, msg_type: str, topic: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if length is not None and array.shape[0] != length:
        raise MessageConversionError(topic, msg_type, f"{what} needs {length} values, got {array.shape[0]}")
    if not np.isfinite(array).all():
        raise MessageConversionError(topic, msg_type, f"{what} has non-finite values: {array.tolist()}")
    return array


def _stamp(msg: Any, stamp_s: float | None, msg_type: str, topic: str) -> None:
    if stamp_s is None:
        return
    try:
        seconds_to_stamp(msg.header.stamp, stamp_s)
    except ValueError as exc:
        raise MessageConversionError(topic, msg_type, str(exc)) from None


def fill_joint_trajectory(msg: Any, joint_names: Sequence[str], positions: Any, stamp_s: float | None,
                          time_from_start_s: float, topic: str = "<unknown>") -> Any:
    """One-point trajectory_msgs/JointTrajectory: reach ``positions`` ``time_from_start_s`` after the stamp.

    ``stamp_s`` None leaves the stamp as it is: zero in a new message, which trajectory
    controllers read as "start now".
    """
    msg_type = "trajectory_msgs/msg/JointTrajectory"
    names = [str(n) for n in joint_names]
    values = _finite_vector(positions, len(names), "positions", msg_type, topic)
    if not (np.isfinite(time_from_start_s) and time_from_start_s >= 0):
        raise MessageConversionError(topic, msg_type, f"time_from_start must be >= 0 s, got {time_from_start_s!r}")
    _stamp(msg, stamp_s, msg_type, topic)
    msg.joint_names = names
    point = new_element(msg, "points")
    set_number_array(point, "positions", values)
    seconds_to_stamp(point.time_from_start, float(time_from_start_s))
    msg.points = [point]
    return msg


def fill_float64_multi_array(msg: Any, values: Any, topic: str = "<unknown>",
                             dims: Sequence[tuple[str, int]] | None = None) -> Any:
    """std_msgs/Float64MultiArray with ``values`` (flattened, row-major) as data.

    The layout stays empty (as forward_command_controller expects) unless ``dims`` gives
    ``(label, size)`` per dimension, outermost first; their sizes must multiply to the length.
    """
    msg_type = "std_msgs/msg/Float64MultiArray"
    data = _finite_vector(values, None, "data", msg_type, topic)
    set_number_array(msg, "data", data)
    if dims:
        sizes = [int(size) for _, size in dims]
        if int(np.prod(sizes)) != data.size:
            raise MessageConversionError(topic, msg_type, f"layout {list(dims)} holds {int(np.prod(sizes))} "
                                         f"values, data has {data.size}")  # fmt: skip
        built, stride = [], data.size
        for label, size in dims:
            dim = new_element(msg.layout, "dim")
            dim.label, dim.size, dim.stride = str(label), int(size), int(stride)
            stride //= max(1, int(size))
            built.append(dim)
        msg.layout.dim = built
    return msg


def fill_joint_state(msg: Any, names: Sequence[str], positions: Any, velocities: Any = None, efforts: Any = None,
                     stamp_s: float | None = None, topic: str = "<unknown>") -> Any:
    """sensor_msgs/JointState; ``velocities`` / ``efforts`` None leave those arrays empty."""
    msg_type = "sensor_msgs/msg/JointState"
    names = [str(n) for n in names]
    _stamp(msg, stamp_s, msg_type, topic)
    msg.name = names
    set_number_array(msg, "position", _finite_vector(positions, len(names), "position", msg_type, topic))
    for field, values in (("velocity", velocities), ("effort", efforts)):
        array = np.empty(0) if values is None else _finite_vector(values, len(names), field, msg_type, topic)
        set_number_array(msg, field, array)
    return msg


def fill_pose_stamped(msg: Any, xyz: Any, quat_xyzw: Any, frame_id: str, stamp_s: float | None,
                      topic: str = "<unknown>") -> Any:
    """geometry_msgs/PoseStamped; the quaternion (x, y, z, w) is normalised, a zero one refused."""
    msg_type = "geometry_msgs/msg/PoseStamped"
    position = _finite_vector(xyz, 3, "position", msg_type, topic)
    quat = _finite_vector(quat_xyzw, 4, "orientation", msg_type, topic)
    norm = float(np.linalg.norm(quat))
    if norm < 1e-9:
        raise MessageConversionError(topic, msg_type, "orientation quaternion has zero length")
    quat = quat / norm
    _stamp(msg, stamp_s, msg_type, topic)
    msg.header.frame_id = frame_id
    p, q = msg.pose.position, msg.pose.orientation
    p.x, p.y, p.z = (float(v) for v in position)
    q.x, q.y, q.z, q.w = (float(v) for v in quat)
    return msg


def fill_twist_stamped(msg: Any, linear: Any, angular: Any, frame_id: str, stamp_s: float | None,
                       topic: str = "<unknown>") -> Any:
    """geometry_msgs/TwistStamped from linear (m/s) and angular (rad/s) xyz."""
    msg_type = "geometry_msgs/msg/TwistStamped"
    lin = _finite_vector(linear, 3, "linear", msg_type, topic)
    ang = _finite_vector(angular, 3, "angular", msg_type, topic)
    _stamp(msg, stamp_s, msg_type, topic)
    msg.header.frame_id = frame_id
    msg.twist.linear.x, msg.twist.linear.y, msg.twist.linear.z = (float(v) for v in lin)
    msg.twist.angular.x, msg.twist.angular.y, msg.twist.angular.z = (float(v) for v in ang)
    return msg


def fill_bool(msg: Any, value: bool) -> Any:
    """std_msgs/Bool."""
    msg.data = bool(value)
    return msg


def fill_diagnostic_array(msg: Any, statuses: Sequence[DiagnosticStatusTuple], stamp_s: float | None,
                          topic: str = "<unknown>") -> Any:
    """diagnostic_msgs/DiagnosticArray from (name, level, message, hardware_id, {key: value}) tuples.

    ``level`` is DiagnosticStatus OK=0, WARN=1, ERROR=2 or STALE=3.
    """
    msg_type = "diagnostic_msgs/msg/DiagnosticArray"
    _stamp(msg, stamp_s, msg_type, topic)
    built = []
    for name, level, message, hardware_id, values in statuses:
        if int(level) not in (0, 1, 2, 3):
            raise MessageConversionError(topic, msg_type, f"status {name!r}: level {level!r} is not 0..3")
        status = new_element(msg, "status")
        set_byte(status, "level", int(level))
        status.name, status.message, status.hardware_id = str(name), str(message), str(hardware_id)
        pairs = []
        for key, value in values.items():
            pair = new_element(status, "values")
            pair.key, pair.value = str(key), str(value)
            pairs.append(pair)
        status.values = pairs
        built.append(status)
    msg.status = built
    return msg


def diagnostic_values(msg: Any, name_suffix: str) -> dict[str, str] | None:
    """The key/values of the first status in a diagnostic_msgs/DiagnosticArray whose name ends
    with ``name_suffix`` (``"policy"`` for the policy node's); None when there is none."""
    for status in msg.status:
        if str(status.name).endswith(name_suffix):
            return {str(kv.key): str(kv.value) for kv in status.values}
    return None


def json_object(msg: Any) -> dict[str, Any]:
    """The JSON object a std_msgs/String carries (the fake robot's task status, the recorder's
    status); empty when the text is not a JSON object, so a garbled status is ignored, not fatal."""
    try:
        value = json.loads(str(msg.data))
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}
