"""ROS 2 transports of hpt_ros: what carries messages between nodes.

Message conversion (ROS message <-> numpy, the IDL structs, CDR) lives below, in
:mod:`hpt_ros.msgs`, with no middleware; this package adds the middleware.

* :mod:`hpt_ros.ros.transport` is the interface nodes are written against;
  :func:`make_transport` builds one by kind:

  - ``"dds"``   pure-pip Cyclone DDS, wire-compatible with ROS 2 (:mod:`hpt_ros.ros.dds`);
  - ``"rclpy"`` a real ROS 2 node (:mod:`hpt_ros.ros.rclpy_transport`);
  - ``"replay"`` bags on a simulated clock, no middleware (:mod:`hpt_ros.ros.replay`).

Importing this package imports neither cyclonedds nor rclpy; each transport imports its
middleware when it is built.
"""

from __future__ import annotations

import importlib
from typing import Any

from hpt_ros.msgs.errors import MessageConversionError, SerializationError

from .transport import (
    QOS_DEFAULT,
    QOS_LATCHED,
    QOS_SENSOR_DATA,
    Durability,
    QoSProfile,
    Reliability,
    Transport,
    TransportError,
)

__all__ = [
    "QOS_DEFAULT",
    "QOS_LATCHED",
    "QOS_SENSOR_DATA",
    "TRANSPORT_KINDS",
    "Durability",
    "MessageConversionError",
    "QoSProfile",
    "Reliability",
    "SerializationError",
    "Transport",
    "TransportError",
    "make_transport",
]

#: kind -> "module:class" of each transport implementation (imported on demand).
TRANSPORT_KINDS: dict[str, str] = {
    "dds": "hpt_ros.ros.dds:DdsTransport",
    "rclpy": "hpt_ros.ros.rclpy_transport:RclpyTransport",
    "replay": "hpt_ros.ros.replay:ReplayTransport",
}


def make_transport(kind: str, node_name: str, parameters: dict[str, Any] | None = None, **options: Any) -> Transport:
    """Build the transport of ``kind`` for node ``node_name``; ``options`` go to its constructor."""
    target = TRANSPORT_KINDS.get(kind)
    if target is None:
        raise TransportError(
            f"unknown transport kind {kind!r} for node {node_name!r}; available: {', '.join(sorted(TRANSPORT_KINDS))}")
    module_name, class_name = target.split(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    return cls(node_name, parameters, **options)
