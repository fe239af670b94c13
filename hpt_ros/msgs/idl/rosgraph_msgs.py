"""rosgraph_msgs/msg: Clock as a ROS 2 DDS struct (the ``/clock`` topic of simulated time)."""

# No "from __future__ import annotations": the cyclonedds binding needs the annotation objects.
from dataclasses import field

from cyclonedds.idl import IdlStruct

from .builtin_interfaces import Time
from .registry import ros_message

__all__ = ["Clock"]


@ros_message
class Clock(IdlStruct, typename="rosgraph_msgs::msg::dds_::Clock_"):
    clock: Time = field(default_factory=Time)
