"""sensor_msgs/JointState -> float64 array in the order of the robot spec's joint names.

Fast for 1 kHz streams: the index mapping from the message's ``name`` list to the wanted
joints is computed once per distinct name list and cached; a call is then one tuple
build, one numpy view and one gather. Extra joints in the message are ignored.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .errors import MessageConversionError

__all__ = ["JOINT_STATE_FIELDS", "joint_state_to_array"]

_TYPE = "sensor_msgs/msg/JointState"
JOINT_STATE_FIELDS = ("position", "velocity", "effort")
_MAX_CACHED = 256
_INDEX_CACHE: dict[tuple[tuple[str, ...], tuple[str, ...]], np.ndarray] = {}


def _indices(msg_names: tuple[str, ...], joint_names: tuple[str, ...], topic: str) -> np.ndarray:
    key = (msg_names, joint_names)
    index = _INDEX_CACHE.get(key)
    if index is None:
        position = {name: i for i, name in enumerate(msg_names)}
        missing = [name for name in joint_names if name not in position]
        if missing:
            available = ", ".join(msg_names) or "(none)"
            raise MessageConversionError(
                topic, _TYPE, f"missing joint(s) {', '.join(missing)}; the message has: {available}")
        if len(_INDEX_CACHE) >= _MAX_CACHED:
            _INDEX_CACHE.clear()
        index = np.fromiter((position[name] for name in joint_names), dtype=np.intp, count=len(joint_names))
        _INDEX_CACHE[key] = index
    return index


def joint_state_to_array(msg: Any, joint_names: Sequence[str], field: str = "position",
                         topic: str = "<unknown>") -> np.ndarray:
    """``msg.<field>`` of ``joint_names``, in that order, as a new float64 array.

    Raises MessageConversionError naming the topic and joint when a joint is missing, when
    ``name`` and ``<field>`` differ in length (an empty velocity/effort included), or
    when a wanted value is NaN or infinite.
    """
    if field not in JOINT_STATE_FIELDS:
        raise MessageConversionError(topic, _TYPE, f"field {field!r} is not one of {', '.join(JOINT_STATE_FIELDS)}")
    msg_names = tuple(msg.name)
    values = np.asarray(getattr(msg, field), dtype=np.float64)
    if values.ndim != 1 or values.shape[0] != len(msg_names):
        raise MessageConversionError(
            topic, _TYPE, f"{len(msg_names)} names but {values.size} {field} values")
    wanted = tuple(joint_names)
    result = values[_indices(msg_names, wanted, topic)]
    finite = np.isfinite(result)
    if not finite.all():
        bad = [f"{wanted[i]}={result[i]}" for i in np.flatnonzero(~finite)]
        raise MessageConversionError(topic, _TYPE, f"non-finite {field}: {', '.join(bad)}")
    return result
