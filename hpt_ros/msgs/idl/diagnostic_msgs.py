"""diagnostic_msgs/msg: DiagnosticArray, DiagnosticStatus, KeyValue as ROS 2 DDS structs."""

# No "from __future__ import annotations": the cyclonedds binding needs the annotation objects.
from dataclasses import field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t

from .registry import ros_message
from .std_msgs import Header

__all__ = ["DiagnosticArray", "DiagnosticStatus", "KeyValue"]


@ros_message
class KeyValue(IdlStruct, typename="diagnostic_msgs::msg::dds_::KeyValue_"):
    key: str = ""
    value: str = ""


@ros_message
class DiagnosticStatus(IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticStatus_"):
    level: t.byte = 0
    name: str = ""
    message: str = ""
    hardware_id: str = ""
    values: t.sequence[KeyValue] = field(default_factory=list)


# The message's constants (``byte OK=0`` ...), as in rclpy.
DiagnosticStatus.OK = 0  # type: ignore[attr-defined]
DiagnosticStatus.WARN = 1  # type: ignore[attr-defined]
DiagnosticStatus.ERROR = 2  # type: ignore[attr-defined]
DiagnosticStatus.STALE = 3  # type: ignore[attr-defined]


@ros_message
class DiagnosticArray(IdlStruct, typename="diagnostic_msgs::msg::dds_::DiagnosticArray_"):
    header: Header = field(default_factory=Header)
    status: t.sequence[DiagnosticStatus] = field(default_factory=list)
