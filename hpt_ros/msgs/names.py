"""ROS 2 names: message type names, topic and node name rules, DDS topic names (no middleware import)."""

from __future__ import annotations

import re

from .errors import InvalidNameError

__all__ = ["dds_topic_name", "normalize_type_name", "validate_node_name", "validate_topic_name"]

# ROS 2 name rules (rcl's validate_topic_name / validate_node_name).
_NODE_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_TOPIC_TOKEN_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def normalize_type_name(msg_type: str) -> str:
    """'sensor_msgs/Image' or 'sensor_msgs/msg/Image' -> 'sensor_msgs/msg/Image'."""
    parts = [p for p in str(msg_type).split("/") if p]
    if len(parts) == 2:
        parts = [parts[0], "msg", parts[1]]
    return "/".join(parts)


def validate_node_name(name: str) -> str:
    """Accept a ROS 2 node name ('policy_node'); raise :class:`InvalidNameError` naming it otherwise."""
    if not isinstance(name, str) or not _NODE_RE.match(name) or len(name) > 255:
        raise InvalidNameError(
            f"invalid ROS 2 node name {name!r}: use letters, digits and '_', not starting with a digit"
        )
    return name


def validate_topic_name(topic: str) -> str:
    """Accept a fully qualified ROS 2 topic name ('/a/b'); raise :class:`InvalidNameError` naming it otherwise."""
    if not isinstance(topic, str) or not topic.startswith("/") or topic == "/":
        raise InvalidNameError(f"invalid ROS 2 topic name {topic!r}: must be absolute, like '/joint_states'")
    if topic.endswith("/") or "//" in topic:
        raise InvalidNameError(f"invalid ROS 2 topic name {topic!r}: empty token")
    for token in topic[1:].split("/"):
        if not _TOPIC_TOKEN_RE.match(token):
            raise InvalidNameError(
                f"invalid ROS 2 topic name {topic!r}: token {token!r} must use letters, digits and '_',"
                " not starting with a digit"
            )
    return topic


def dds_topic_name(topic: str) -> str:
    """ROS 2 topic name -> DDS topic name ('/joint_states' -> 'rt/joint_states')."""
    return "rt" + validate_topic_name(topic)
