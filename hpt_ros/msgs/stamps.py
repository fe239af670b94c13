"""builtin_interfaces Time/Duration <-> float seconds, for any message flavour.

ROS 2 stores a time as ``sec`` (int32) and ``nanosec`` (uint32, 0 <= nanosec < 1e9);
negative times have a negative ``sec`` and a positive ``nanosec`` (-1.5 s is sec=-2,
nanosec=500000000). Conversions round to the nearest nanosecond.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["header_seconds", "seconds_to_stamp", "stamp_to_seconds"]

_NS_PER_S = 1_000_000_000
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


def stamp_to_seconds(stamp: Any) -> float:
    """Seconds of a Time/Duration message (anything with ``.sec`` and ``.nanosec``)."""
    return (int(stamp.sec) * _NS_PER_S + int(stamp.nanosec)) / _NS_PER_S


def seconds_to_stamp(stamp: Any, t: float) -> Any:
    """Set ``stamp.sec`` / ``stamp.nanosec`` from seconds ``t``; returns ``stamp``.

    Raises ValueError for NaN/inf or a time outside the int32 seconds range.
    """
    if not math.isfinite(t):
        raise ValueError(f"cannot store non-finite time {t!r} in a ROS 2 stamp")
    if isinstance(t, int):
        total_ns = t * _NS_PER_S
    else:
        whole = math.floor(t)
        total_ns = whole * _NS_PER_S + round((t - whole) * _NS_PER_S)
    sec, nanosec = divmod(total_ns, _NS_PER_S)
    if not _INT32_MIN <= sec <= _INT32_MAX:
        raise ValueError(f"time {t!r} s does not fit a ROS 2 stamp (int32 seconds)")
    stamp.sec = int(sec)
    stamp.nanosec = int(nanosec)
    return stamp


def header_seconds(msg: Any) -> float:
    """``msg.header.stamp`` in seconds."""
    return stamp_to_seconds(msg.header.stamp)
