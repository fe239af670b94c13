"""std_msgs/msg: Header, Bool, Float64, String, Float64MultiArray (+ layout) as ROS 2 DDS structs."""

# No "from __future__ import annotations": the cyclonedds binding needs the annotation objects.
from dataclasses import field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t

from .builtin_interfaces import Time
from .registry import ros_message

__all__ = ["Bool", "Float64", "Float64MultiArray", "Header", "MultiArrayDimension", "MultiArrayLayout", "String"]


@ros_message
class Header(IdlStruct, typename="std_msgs::msg::dds_::Header_"):
    stamp: Time = field(default_factory=Time)
    frame_id: str = ""


@ros_message
class Bool(IdlStruct, typename="std_msgs::msg::dds_::Bool_"):
    data: bool = False


@ros_message
class Float64(IdlStruct, typename="std_msgs::msg::dds_::Float64_"):
    data: t.float64 = 0.0


@ros_message
class String(IdlStruct, typename="std_msgs::msg::dds_::String_"):
    data: str = ""


@ros_message
class MultiArrayDimension(IdlStruct, typename="std_msgs::msg::dds_::MultiArrayDimension_"):
    label: str = ""
    size: t.uint32 = 0
    stride: t.uint32 = 0


@ros_message
class MultiArrayLayout(IdlStruct, typename="std_msgs::msg::dds_::MultiArrayLayout_"):
    dim: t.sequence[MultiArrayDimension] = field(default_factory=list)
    data_offset: t.uint32 = 0


@ros_message
class Float64MultiArray(IdlStruct, typename="std_msgs::msg::dds_::Float64MultiArray_"):
    layout: MultiArrayLayout = field(default_factory=MultiArrayLayout)
    data: t.sequence[t.float64] = field(default_factory=list)
