"""geometry_msgs/msg: Point, Quaternion, Pose, PoseStamped, Vector3, Twist, TwistStamped as ROS 2 DDS structs."""

# No "from __future__ import annotations": the cyclonedds binding needs the annotation objects.
from dataclasses import field

from cyclonedds.idl import IdlStruct
from cyclonedds.idl import types as t

from .registry import ros_message
from .std_msgs import Header

__all__ = ["Point", "Pose", "PoseStamped", "Quaternion", "Twist", "TwistStamped", "Vector3"]


@ros_message
class Point(IdlStruct, typename="geometry_msgs::msg::dds_::Point_"):
    x: t.float64 = 0.0
    y: t.float64 = 0.0
    z: t.float64 = 0.0


@ros_message
class Quaternion(IdlStruct, typename="geometry_msgs::msg::dds_::Quaternion_"):
    x: t.float64 = 0.0
    y: t.float64 = 0.0
    z: t.float64 = 0.0
    w: t.float64 = 1.0  # ROS 2 default: the identity rotation


@ros_message
class Pose(IdlStruct, typename="geometry_msgs::msg::dds_::Pose_"):
    position: Point = field(default_factory=Point)
    orientation: Quaternion = field(default_factory=Quaternion)


@ros_message
class PoseStamped(IdlStruct, typename="geometry_msgs::msg::dds_::PoseStamped_"):
    header: Header = field(default_factory=Header)
    pose: Pose = field(default_factory=Pose)


@ros_message
class Vector3(IdlStruct, typename="geometry_msgs::msg::dds_::Vector3_"):
    x: t.float64 = 0.0
    y: t.float64 = 0.0
    z: t.float64 = 0.0


@ros_message
class Twist(IdlStruct, typename="geometry_msgs::msg::dds_::Twist_"):
    linear: Vector3 = field(default_factory=Vector3)
    angular: Vector3 = field(default_factory=Vector3)


@ros_message
class TwistStamped(IdlStruct, typename="geometry_msgs::msg::dds_::TwistStamped_"):
    header: Header = field(default_factory=Header)
    twist: Twist = field(default_factory=Twist)
