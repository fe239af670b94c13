"""Errors of message conversion, serialisation and ROS 2 names.

Transport errors (:class:`hpt_ros.ros.transport.TransportError`) live with the transport
interface; these are about the content of one message or one name.
"""

from __future__ import annotations

__all__ = ["InvalidNameError", "MessageConversionError", "SerializationError"]


class MessageConversionError(ValueError):
    """A message could not be converted to or from numpy: names the topic and the type."""

    def __init__(self, topic: str, msg_type: str, reason: str):
        self.topic = topic
        self.msg_type = msg_type
        self.reason = reason
        super().__init__(f"{topic} [{msg_type}]: {reason}")


class SerializationError(ValueError):
    """CDR bytes could not be produced or parsed for a message type."""

    def __init__(self, msg_type: str, reason: str):
        self.msg_type = msg_type
        self.reason = reason
        super().__init__(f"{msg_type}: {reason}")


class InvalidNameError(ValueError):
    """A ROS 2 node or topic name breaks ROS 2's naming rules (the message names it)."""
