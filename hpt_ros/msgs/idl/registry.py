"""The registry of IDL message structs and the decorator that makes a cyclonedds struct a ROS 2 message.

``@ros_message`` on an ``IdlStruct`` subclass whose ``typename`` is ROS 2's DDS name
(``sensor_msgs::msg::dds_::Image_``):

* makes it a dataclass with defaults (``Image()`` is a valid default message),
  marks it ``final`` (XCDR1, as ROS 2 uses),
* replaces ``serialize`` / ``deserialize`` by the fast codec of :mod:`.cdr` (the binding's
  own element-by-element machinery stays reachable as ``Image.__idl__.serialize``),
* gives it an ``__eq__`` that compares numpy fields by value,
* registers it in :data:`MESSAGE_TYPES` under ``'sensor_msgs/msg/Image'``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from typing import Any, TypeVar

import numpy as np
from cyclonedds.idl import annotations as idl_annotations
from cyclonedds.idl._support import Endianness

from ..names import normalize_type_name
from . import cdr

__all__ = [
    "MESSAGE_TYPES",
    "get_message_class",
    "iter_message_types",
    "new_message",
    "normalize_type_name",
    "ros_message",
]

T = TypeVar("T", bound=type)


class _MessageRegistry(dict):
    """``dict[str, type]`` keyed by 'pkg/msg/Name' that also accepts 'pkg/Name'."""

    def __getitem__(self, key: str) -> type:
        name = normalize_type_name(key)
        if not dict.__contains__(self, name):
            raise KeyError(
                f"message type {key!r} has no IDL struct in hpt_ros.msgs.idl; known types: {', '.join(sorted(self))}"
            )
        return dict.__getitem__(self, name)

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and dict.__contains__(self, normalize_type_name(key))

    def get(self, key: str, default: Any = None) -> Any:  # type: ignore[override]
        return self[key] if key in self else default


#: 'pkg/msg/Name' -> IDL struct class (lookups also accept 'pkg/Name').
MESSAGE_TYPES: dict[str, type] = _MessageRegistry()


def get_message_class(msg_type: str) -> type:
    """The IDL struct class of ``msg_type``; KeyError listing the known types otherwise."""
    return MESSAGE_TYPES[msg_type]


def new_message(msg_type: str) -> Any:
    """A default-initialised IDL message (nested messages default-initialised too)."""
    return MESSAGE_TYPES[msg_type]()


def _values_equal(a: Any, b: Any) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a_arr, b_arr = np.asarray(a), np.asarray(b)
        return a_arr.shape == b_arr.shape and bool(np.array_equal(a_arr, b_arr))
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_values_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _message_eq(self: Any, other: Any) -> bool:
    if type(self) is not type(other):
        return NotImplemented
    return all(_values_equal(getattr(self, f.name), getattr(other, f.name)) for f in dataclasses.fields(self))


def _fast_serialize(self: Any, buffer: Any = None, endianness: Any = None, use_version_2: bool | None = None) -> bytes:
    if use_version_2 or buffer is not None or endianness not in (None, Endianness.Little):
        return self.__idl__.serialize(self, buffer=buffer, endianness=endianness, use_version_2=use_version_2)
    return cdr.serialize(self)


def _fast_deserialize(cls: Any, data: Any, has_header: bool = True, use_version_2: bool | None = None) -> Any:
    if not has_header or use_version_2 is not None:
        return cls.__idl__.deserialize(data, has_header=has_header, use_version_2=use_version_2)
    return cdr.deserialize(data, cls)


def ros_message(cls: T) -> T:
    """Class decorator: register an ``IdlStruct`` as a ROS 2 message (see module docstring)."""
    idl_annotations.final(cls)
    message: Any = dataclasses.dataclass(eq=False)(cls)
    message.__eq__ = _message_eq
    message.__hash__ = None
    message.serialize = _fast_serialize
    message.deserialize = classmethod(_fast_deserialize)
    message.__ros_type__ = name = cdr.ros_type_name(message)
    dict.__setitem__(MESSAGE_TYPES, name, message)
    return cls


def iter_message_types() -> Iterator[tuple[str, type]]:
    """(name, class) of every registered message, sorted by name."""
    return iter(sorted(dict.items(MESSAGE_TYPES)))
