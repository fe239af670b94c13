"""Message type names and the rosbags typestores that (de)serialise them.

Two sources of message definitions:

- a ROS 2 distribution store shipped with ``rosbags`` (``distro_typestore("humble")``);
- the definitions a bag carries itself (mcap schemas, the sqlite3 ``message_definitions``
  table), turned into a store of their own by ``typestore_from_definition``.

Type names are compared in the ``pkg/msg/Name`` form; ``pkg/Name`` is accepted as equal.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from rosbags.typesys import Stores, TypesysError, get_types_from_idl, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

__all__ = [
    "DISTROS",
    "distro_typestore",
    "normalize_msgtype",
    "same_msgtype",
    "typestore_from_definition",
    "zstd_module",
]

DISTROS: dict[str, Stores] = {
    name: store
    for name in ("foxy", "galactic", "humble", "iron", "jazzy", "kilted")
    if (store := getattr(Stores, f"ROS2_{name.upper()}", None)) is not None  # older rosbags lack some
}

_IDL_SEPARATOR = "=" * 80 + "\n"


def zstd_module() -> Any:
    """The zstd module rosbags uses (``compression.zstd`` or ``backports.zstd``), imported lazily."""
    for name in ("compression.zstd", "backports.zstd"):  # Python >= 3.14, else rosbags' dependency
        try:
            return importlib.import_module(name)
        except ImportError:
            continue
    raise ImportError("zstd-compressed bags need Python >= 3.14 or the backports.zstd package")


def normalize_msgtype(name: str) -> str:
    """Return ``pkg/msg/Name`` for ``pkg/msg/Name`` or ``pkg/Name``; ValueError otherwise."""
    parts = name.strip().split("/")
    if len(parts) == 2 and all(parts):
        return f"{parts[0]}/msg/{parts[1]}"
    if len(parts) == 3 and all(parts):
        return "/".join(parts)
    raise ValueError(f"not a ROS 2 message type name: {name!r} (expected 'pkg/msg/Name')")


def same_msgtype(a: str, b: str) -> bool:
    """True when two type names denote the same type ('pkg/msg/Name' == 'pkg/Name')."""
    try:
        return normalize_msgtype(a) == normalize_msgtype(b)
    except ValueError:
        return a == b


@cache
def distro_typestore(distro: str) -> Typestore:
    """The rosbags store of a ROS 2 distribution ('humble', 'jazzy', 'foxy', ...), cached."""
    key = distro.strip().lower()
    if key not in DISTROS:
        raise ValueError(f"unknown ROS 2 distro {distro!r}; known: {', '.join(sorted(DISTROS))}")
    return get_typestore(DISTROS[key])


def typestore_from_definition(msgtype: str, encoding: str, text: str) -> Typestore:
    """A store holding ``msgtype`` and its dependencies, parsed from a bag's definition text.

    ``encoding`` is ``ros2msg`` (concatenated .msg files, rosbag2 style) or ``ros2idl`` /
    ``omgidl``. Raises ``TypesysError`` (or a parser error) when the text is unusable.
    """
    msgtype = normalize_msgtype(msgtype)
    store = get_typestore(Stores.EMPTY)
    if encoding in ("ros2msg", "msg"):
        store.register(get_types_from_msg(text, msgtype))
    elif encoding in ("ros2idl", "omgidl", "idl"):
        if text.startswith(f"{_IDL_SEPARATOR}IDL: "):
            for block in text.split(_IDL_SEPARATOR)[1:]:
                _, idl = block.split("\n", 1)
                store.register(get_types_from_idl(idl))
        else:
            store.register(get_types_from_idl(text))
    else:
        raise TypesysError(f"unsupported definition encoding {encoding!r} for {msgtype}")
    if msgtype not in store.fielddefs:
        raise TypesysError(f"definition text does not define {msgtype}")
    return store
