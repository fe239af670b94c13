"""A live view of a running graph in Foxglove: cameras, joint states, commands, predicted
chunks, safety state and diagnostics over the Foxglove WebSocket protocol.

    hpt-ros view --robot franka_fr3            # a bridge from the DDS graph, ws://127.0.0.1:8765
    hpt-ros demo --view                        # or attached to a command's own transport

* :mod:`hpt_ros.view.topics` says what is shown: the robot spec's topics and the nodes' own.
* :mod:`hpt_ros.view.bridge` serves them (``foxglove-sdk``): each ROS topic becomes a channel
  of CDR messages with its ROS 2 message definition (``ros2msg``), as in an mcap bag, so
  Foxglove's panels read the live view and recorded bags alike.
* :mod:`hpt_ros.view.options` holds the ``--view`` command-line flags (no foxglove import).

The view only subscribes through the transport interface: it works on the dds, rclpy and
replay transports alike and needs nothing of the nodes but what they publish.
"""

from __future__ import annotations

from .options import DEFAULT_VIEW_HOST, DEFAULT_VIEW_PORT, ViewOptions, add_view_arguments, view_options
from .topics import SAFETY_STATE_TOPIC, ViewTopic, view_topics

__all__ = [
    "DEFAULT_VIEW_HOST",
    "DEFAULT_VIEW_PORT",
    "SAFETY_STATE_TOPIC",
    "ViewOptions",
    "ViewTopic",
    "add_view_arguments",
    "layout_path",
    "view_options",
    "view_topics",
]


def layout_path():
    """The shipped Foxglove layout (config/foxglove/hpt_ros_layout.json) for the default robot's topics."""
    from hpt_ros.resources import config_dir

    return config_dir() / "foxglove" / "hpt_ros_layout.json"
