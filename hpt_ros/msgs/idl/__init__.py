"""ROS 2 message types as Cyclone DDS IDL structs, wire-compatible with ROS 2.

Each struct carries ROS 2's DDS type name (``sensor_msgs::msg::dds_::Image_``), is final
(XCDR1) and has defaults for every field, so ``new_message("sensor_msgs/msg/Image")``
gives a valid default message. ``serialize`` / ``deserialize`` use the codec of
:mod:`.cdr` (numpy fast paths; bytes identical to ROS 2 / rosbags).

Importing this package imports ``cyclonedds`` (but creates no DDS entity).
"""

from __future__ import annotations

from . import builtin_interfaces, diagnostic_msgs, geometry_msgs, rosgraph_msgs, sensor_msgs, std_msgs, trajectory_msgs
from .cdr import deserialize, serialize
from .registry import MESSAGE_TYPES, get_message_class, iter_message_types, new_message, normalize_type_name

__all__ = [
    "MESSAGE_TYPES",
    "builtin_interfaces",
    "deserialize",
    "diagnostic_msgs",
    "geometry_msgs",
    "get_message_class",
    "iter_message_types",
    "new_message",
    "normalize_type_name",
    "rosgraph_msgs",
    "sensor_msgs",
    "serialize",
    "std_msgs",
    "trajectory_msgs",
]
