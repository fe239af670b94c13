"""Setting message fields the way each message flavour wants them.

The conversions work on three kinds of message objects with the same field names:

* rclpy messages: number sequences are ``array.array`` (their setters accept an
  ``array.array`` of the right typecode at once, but check a list element by element),
  ``byte`` fields are ``bytes`` of length 1, nested element classes live in ``pkg.msg``;
* rosbags dataclasses: number sequences are numpy arrays;
* the IDL structs of :mod:`hpt_ros.msgs.idl`: anything array-like.

These helpers look at the current value or at the class to pick the right form.
"""

from __future__ import annotations

import array
import collections.abc
import dataclasses
import importlib
import sys
import typing
from typing import Any

import numpy as np

__all__ = ["default_instance", "element_class", "new_element", "set_byte", "set_number_array"]

_ELEMENT_CLASSES: dict[tuple[type, str], type] = {}


def set_number_array(msg: Any, name: str, values: np.ndarray) -> None:
    """Set a number-sequence field from a 1-D numpy array of the field's dtype."""
    current = getattr(msg, name, None)
    if isinstance(current, array.array):  # rclpy: array.array of the same typecode, filled at once
        value = array.array(current.typecode)
        value.frombytes(np.ascontiguousarray(values, dtype=np.dtype(current.typecode)).tobytes())
        setattr(msg, name, value)
    else:
        setattr(msg, name, np.ascontiguousarray(values))


def set_byte(obj: Any, name: str, value: int) -> None:
    """Set an IDL ``byte`` (octet) field: ``bytes`` for rclpy, ``int`` elsewhere."""
    if isinstance(getattr(obj, name, None), (bytes, bytearray)):
        setattr(obj, name, bytes((int(value),)))
    else:
        setattr(obj, name, int(value))


def _type_hints(cls: type) -> dict[str, Any]:
    """Resolved field annotations of a dataclass message (rosbags modules import some
    typing names only for type checkers, so provide them)."""
    module = sys.modules.get(cls.__module__)
    namespace = {"ClassVar": typing.ClassVar, "np": np, "numpy": np, **(vars(module) if module else {})}
    return typing.get_type_hints(cls, globalns=namespace, include_extras=True)


def _unwrap(tp: Any) -> Any:
    while typing.get_origin(tp) is typing.Annotated:
        tp = typing.get_args(tp)[0]
    return tp


def element_class(msg: Any, name: str) -> type:
    """The message class of the elements of sequence field ``name`` of ``msg``."""
    key = (type(msg), name)
    cls = _ELEMENT_CLASSES.get(key)
    if cls is not None:
        return cls
    fields_and_types = getattr(type(msg), "_fields_and_field_types", None)
    if isinstance(fields_and_types, dict):  # rclpy: 'sequence<trajectory_msgs/JointTrajectoryPoint>'
        spec = fields_and_types[name]
        inner = spec[spec.index("<") + 1: spec.rindex(">")].split(",")[0].strip()
        package, type_name = inner.split("/")[0], inner.split("/")[-1]
        cls = getattr(importlib.import_module(f"{package}.msg"), type_name)
    else:  # dataclasses: rosbags (list[Point]) and IDL structs (sequence[Point])
        tp = _unwrap(_type_hints(type(msg))[name])
        origin = typing.get_origin(tp)
        if origin not in (list, collections.abc.Sequence, typing.Sequence):
            raise TypeError(f"{type(msg).__name__}.{name} is not a sequence of messages ({tp!r})")
        cls = _unwrap(typing.get_args(tp)[0])
    _ELEMENT_CLASSES[key] = cls
    return cls


def default_instance(cls: type) -> Any:
    """A default-initialised message of ``cls``; builds rosbags dataclasses (which have no
    defaults) field by field: 0, 0.0, '', False, empty arrays/lists, nested defaults."""
    try:
        return cls()
    except TypeError:
        pass
    hints = _type_hints(cls)
    return cls(**{
        f.name: _default_value(hints[f.name]) for f in dataclasses.fields(cls)
        if not f.name.startswith("_") and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING
        and typing.get_origin(hints[f.name]) is not typing.ClassVar
    })


def _default_value(tp: Any) -> Any:
    tp = _unwrap(tp)
    origin = typing.get_origin(tp)
    if tp in (int, float, str, bool):
        return tp()
    if tp is np.ndarray or origin is np.ndarray:
        dtype_arg = typing.get_args(tp)[1] if len(typing.get_args(tp)) == 2 else None
        scalar = typing.get_args(dtype_arg)[0] if dtype_arg is not None and typing.get_args(dtype_arg) else np.uint8
        return np.empty(0, dtype=scalar)
    if origin in (list, collections.abc.Sequence, typing.Sequence):
        return []
    if isinstance(tp, type):
        return default_instance(tp)
    raise TypeError(f"no default for field type {tp!r}")


def new_element(msg: Any, name: str) -> Any:
    """A default-initialised new element for sequence field ``name`` of ``msg``."""
    return default_instance(element_class(msg, name))
