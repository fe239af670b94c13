"""CDR of the IDL structs equals ROS 2's, byte for byte, as produced by the rosbags library.

For every registered type and both the Humble and Jazzy type definitions: our fast codec,
the cyclonedds binding's own (element by element) serialiser and rosbags' ``serialize_cdr``
give identical bytes (4-byte encapsulation header included), and each side decodes the
other's bytes to equal fields.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np
import pytest
from conftest import require_module

require_module("cyclonedds")
rosbags_typesys = require_module("rosbags.typesys")

from hpt_ros.msgs.errors import SerializationError  # noqa: E402
from hpt_ros.msgs.idl import MESSAGE_TYPES, deserialize, new_message, serialize  # noqa: E402
from hpt_ros.msgs.idl.cdr import plan_of  # noqa: E402
from hpt_ros.msgs.idl.examples import example_messages  # noqa: E402

STORES = {
    "humble": rosbags_typesys.Stores.ROS2_HUMBLE,
    "jazzy": rosbags_typesys.Stores.ROS2_JAZZY,
}
TYPE_NAMES = sorted(dict.keys(MESSAGE_TYPES))


@pytest.fixture(scope="module", params=sorted(STORES))
def typestore(request: pytest.FixtureRequest) -> Any:
    return rosbags_typesys.get_typestore(STORES[request.param])


def to_rosbags(msg: Any, typestore: Any) -> Any:
    """The rosbags dataclass with the same content as IDL struct ``msg``."""
    plan = plan_of(type(msg))
    values = {}
    for field in plan.fields:
        value = getattr(msg, field.name)
        if field.struct_type is not None:
            value = ([to_rosbags(v, typestore) for v in value] if isinstance(value, list)
                     else to_rosbags(value, typestore))
        elif field.prim is not None and field.kind != 0:  # number sequence
            value = np.asarray(value, dtype=field.prim.dtype_le.newbyteorder("="))
        values[field.name] = value
    return typestore.types[plan.msg_type](**values)


def plain(value: Any) -> Any:
    """Lists for numpy arrays, recursively, for the binding's own serialiser."""
    if isinstance(value, np.ndarray):
        return value.tolist()
    if hasattr(type(value), "__idl__"):
        return type(value)(**{f.name: plain(getattr(value, f.name)) for f in plan_of(type(value)).fields})
    if isinstance(value, list):
        return [plain(v) for v in value]
    return value


@pytest.mark.parametrize("name", TYPE_NAMES)
def test_cdr_bytes_equal_rosbags_and_binding(name: str, typestore: Any) -> None:
    msg = example_messages()[name]
    ours = msg.serialize()
    theirs = bytes(typestore.serialize_cdr(to_rosbags(msg, typestore), name))
    assert ours[:4] == b"\x00\x01\x00\x00"
    assert ours == theirs
    assert type(msg).__idl__.serialize(plain(msg)) == ours


@pytest.mark.parametrize("name", TYPE_NAMES)
def test_rosbags_bytes_decode_to_equal_fields(name: str, typestore: Any) -> None:
    msg = example_messages()[name]
    theirs = bytes(typestore.serialize_cdr(to_rosbags(msg, typestore), name))
    assert type(msg).deserialize(theirs) == msg
    assert deserialize(theirs, type(msg)) == msg
    # and rosbags reads ours back to what we sent
    back = typestore.deserialize_cdr(msg.serialize(), name)
    assert bytes(typestore.serialize_cdr(back, name)) == theirs


@pytest.mark.parametrize("name", TYPE_NAMES)
def test_default_messages_serialise_like_rosbags(name: str, typestore: Any) -> None:
    msg = new_message(name)
    assert msg.serialize() == bytes(typestore.serialize_cdr(to_rosbags(msg, typestore), name))
    assert type(msg).deserialize(msg.serialize()) == msg


@pytest.mark.parametrize("length", range(0, 9))
def test_alignment_after_odd_strings_and_empty_sequences(length: int, typestore: Any) -> None:
    js = new_message("sensor_msgs/msg/JointState")
    js.header.frame_id = "f" * length
    js.name = ["n" * (length + i) for i in range(length % 4)]
    js.position = [float(i) for i in range(length % 4)]
    js.velocity = []
    js.effort = [0.5] * (length % 4)
    theirs = bytes(typestore.serialize_cdr(to_rosbags(js, typestore), "sensor_msgs/msg/JointState"))
    assert js.serialize() == theirs
    assert type(js).deserialize(theirs) == js


def test_image_payload_is_zero_copy_and_read_only() -> None:
    image = example_messages()["sensor_msgs/msg/Image"]
    data = image.serialize()
    decoded = type(image).deserialize(data)
    assert isinstance(decoded.data, np.ndarray) and decoded.data.dtype == np.uint8
    assert not decoded.data.flags.writeable
    assert np.shares_memory(decoded.data, np.frombuffer(data, np.uint8))


def test_image_data_accepts_bytes_and_shaped_arrays() -> None:
    rgb = np.arange(2 * 3 * 3, dtype=np.uint8).reshape(2, 3, 3)
    a, b = new_message("sensor_msgs/Image"), new_message("sensor_msgs/msg/Image")
    a.data, b.data = rgb, rgb.tobytes()
    assert a.serialize() == b.serialize()


def test_rosbags_and_plain_objects_serialise_through_the_idl_plan(typestore: Any) -> None:
    msg = example_messages()["sensor_msgs/msg/JointState"]
    as_rosbags = to_rosbags(msg, typestore)
    assert serialize(as_rosbags, type(msg)) == msg.serialize()


def test_big_endian_cdr_is_read() -> None:
    body = struct.pack(">iI", -3, 42)
    time = deserialize(b"\x00\x00\x00\x00" + body, MESSAGE_TYPES["builtin_interfaces/msg/Time"])
    assert (time.sec, time.nanosec) == (-3, 42)
    js = deserialize(b"\x00\x00\x00\x00" + struct.pack(">iI", 0, 0) + struct.pack(">I", 1) + b"\x00\x00\x00\x00"
                     + struct.pack(">I", 0) + struct.pack(">I", 2) + struct.pack(">2d", 1.5, -2.0)
                     + struct.pack(">II", 0, 0), MESSAGE_TYPES["sensor_msgs/msg/JointState"])
    assert js.name == [] and js.position.tolist() == [1.5, -2.0] and js.position.dtype.isnative is False


@pytest.mark.parametrize("data", [b"", b"\x00\x01", b"\x00\x07\x00\x00\x01\x00\x00\x00", b"\x00\x01\x00\x00\x05"])
def test_malformed_cdr_raises_naming_the_type(data: bytes) -> None:
    with pytest.raises(SerializationError, match="sensor_msgs/msg/Image"):
        deserialize(data, MESSAGE_TYPES["sensor_msgs/msg/Image"])


def test_truncated_image_raises() -> None:
    data = example_messages()["sensor_msgs/msg/Image"].serialize()
    with pytest.raises(SerializationError, match="data"):
        deserialize(data[:-5], MESSAGE_TYPES["sensor_msgs/msg/Image"])


def test_bad_field_value_names_the_field() -> None:
    msg = new_message("sensor_msgs/msg/Image")
    msg.header.stamp.nanosec = -1
    with pytest.raises(SerializationError, match=r"header\.stamp\.nanosec"):
        msg.serialize()


def test_registry_accepts_short_names_and_lists_known_types() -> None:
    assert MESSAGE_TYPES["sensor_msgs/Image"] is MESSAGE_TYPES["sensor_msgs/msg/Image"]
    assert "std_msgs/Bool" in MESSAGE_TYPES
    with pytest.raises(KeyError, match="sensor_msgs/msg/Image"):
        MESSAGE_TYPES["sensor_msgs/msg/PointCloud2"]


def test_dds_type_names_are_ros2s() -> None:
    for name, cls in dict.items(MESSAGE_TYPES):
        package, _, short = name.split("/")
        assert cls.__idl__.idl_transformed_typename == f"{package}::msg::dds_::{short}_"


def test_nested_defaults_are_fresh_objects() -> None:
    a, b = new_message("geometry_msgs/msg/PoseStamped"), new_message("geometry_msgs/msg/PoseStamped")
    a.header.frame_id = "changed"
    assert b.header.frame_id == "" and b.pose.orientation.w == 1.0
