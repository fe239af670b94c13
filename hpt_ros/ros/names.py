"""ROS 2 names shared by every transport: message type names and DDS topic names (no middleware import)."""

from __future__ import annotations

from .transport import validate_topic_name

__all__ = ["dds_topic_name", "normalize_type_name"]


def normalize_type_name(msg_type: str) -> str:
    """'sensor_msgs/Image' or 'sensor_msgs/msg/Image' -> 'sensor_msgs/msg/Image'."""
    parts = [p for p in str(msg_type).split("/") if p]
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    return "/".join(parts)


def dds_topic_name(topic: str) -> str:
    """ROS 2 topic name -> DDS topic name ('/joint_states' -> 'rt/joint_states')."""
    return "rt" + validate_topic_name(topic)
