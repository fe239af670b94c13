"""Errors of the ROS layer (message conversion and serialisation).

Transport errors (:class:`hpt_ros.ros.transport.TransportError`) live with the transport
interface; these two are about the content of one message.
"""

from __future__ import annotations

__all__ = ["MessageConversionError", "SerializationError"]


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
