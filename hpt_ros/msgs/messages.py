"""Message conversion, written once against ROS 2 field names.

ROS message -> numpy for observations, numpy -> ROS message for commands. Every function
only reads and sets attributes by their ROS 2 names (``msg.height``, ``msg.header.stamp.sec``,
``msg.name``, ``msg.position`` ...), so the same code serves rclpy messages, rosbags
dataclasses and the DDS IDL structs of :mod:`hpt_ros.msgs.idl`. Conversions that fail raise
:class:`~hpt_ros.msgs.errors.MessageConversionError` naming the topic and the type (pass
``topic=`` for useful messages).

The implementations live in small modules: :mod:`.images`, :mod:`.joint_states`,
:mod:`.vectors`, :mod:`.commands`, :mod:`.stamps`; this module is the one place to import them from.
"""

from __future__ import annotations

from .commands import (
    DiagnosticStatusTuple,
    diagnostic_values,
    json_object,
    fill_bool,
    fill_diagnostic_array,
    fill_float64_multi_array,
    fill_joint_state,
    fill_joint_trajectory,
    fill_pose_stamped,
    fill_twist_stamped,
)
from .errors import MessageConversionError
from .images import (
    COLOUR_ENCODINGS,
    IMAGE_ENCODINGS,
    compressed_image_to_rgb,
    image_to_numpy,
    image_to_numpy_cv_bridge,
    image_to_rgb,
    numpy_to_image,
    rgb_to_compressed,
)
from .joint_states import JOINT_STATE_FIELDS, joint_state_to_array
from .stamps import header_seconds, seconds_to_stamp, stamp_to_seconds
from .vectors import float64_multi_array_to_array, pose_to_array, twist_to_array

__all__ = [
    "COLOUR_ENCODINGS",
    "DiagnosticStatusTuple",
    "IMAGE_ENCODINGS",
    "JOINT_STATE_FIELDS",
    "MessageConversionError",
    "compressed_image_to_rgb",
    "diagnostic_values",
    "json_object",
    "fill_bool",
    "fill_diagnostic_array",
    "fill_float64_multi_array",
    "fill_joint_state",
    "fill_joint_trajectory",
    "fill_pose_stamped",
    "fill_twist_stamped",
    "float64_multi_array_to_array",
    "header_seconds",
    "image_to_numpy",
    "image_to_numpy_cv_bridge",
    "image_to_rgb",
    "joint_state_to_array",
    "numpy_to_image",
    "pose_to_array",
    "rgb_to_compressed",
    "seconds_to_stamp",
    "stamp_to_seconds",
    "twist_to_array",
]
