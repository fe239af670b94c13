"""sensor_msgs/msg: Image, CompressedImage, JointState as ROS 2 DDS structs.

``data`` of the image types is ``sequence<uint8>``; the codec writes it from any buffer
(bytes, numpy array of any shape) and reads it back as a zero-copy numpy uint8 view.
"""

# No "from __future__ import annotations": the cyclonedds binding needs the annotation objects.
from dataclasses import field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t

from .registry import ros_message
from .std_msgs import Header

__all__ = ["CompressedImage", "Image", "JointState"]


@ros_message
class Image(IdlStruct, typename="sensor_msgs::msg::dds_::Image_"):
    header: Header = field(default_factory=Header)
    height: t.uint32 = 0
    width: t.uint32 = 0
    encoding: str = ""
    is_bigendian: t.uint8 = 0
    step: t.uint32 = 0
    data: t.sequence[t.uint8] = field(default_factory=list)


@ros_message
class CompressedImage(IdlStruct, typename="sensor_msgs::msg::dds_::CompressedImage_"):
    header: Header = field(default_factory=Header)
    format: str = ""
    data: t.sequence[t.uint8] = field(default_factory=list)


@ros_message
class JointState(IdlStruct, typename="sensor_msgs::msg::dds_::JointState_"):
    header: Header = field(default_factory=Header)
    name: t.sequence[str] = field(default_factory=list)
    position: t.sequence[t.float64] = field(default_factory=list)
    velocity: t.sequence[t.float64] = field(default_factory=list)
    effort: t.sequence[t.float64] = field(default_factory=list)
