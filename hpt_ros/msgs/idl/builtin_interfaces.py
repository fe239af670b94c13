"""builtin_interfaces/msg: Time and Duration as ROS 2 DDS structs."""

# No "from __future__ import annotations": the cyclonedds binding needs the annotation objects.
from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t

from .registry import ros_message

__all__ = ["Duration", "Time"]


@ros_message
class Time(IdlStruct, typename="builtin_interfaces::msg::dds_::Time_"):
    sec: t.int32 = 0
    nanosec: t.uint32 = 0


@ros_message
class Duration(IdlStruct, typename="builtin_interfaces::msg::dds_::Duration_"):
    sec: t.int32 = 0
    nanosec: t.uint32 = 0
