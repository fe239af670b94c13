"""Message conversion: numpy <-> Image/CompressedImage/JointState and the command fillers.

Every conversion runs on the DDS IDL structs and on rosbags dataclasses of the Humble
and Jazzy typestores, after a CDR round trip (serialise, deserialise, convert), so what
is tested is what arrives from the wire or a bag.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from conftest import require_module

from hpt_ros.msgs import messages as m
from hpt_ros.msgs._flavours import default_instance
from hpt_ros.msgs.errors import MessageConversionError

cyclonedds = require_module("cyclonedds")
rosbags_typesys = require_module("rosbags.typesys")

from hpt_ros.msgs.idl import new_message as new_idl_message  # noqa: E402

TOPIC = "/camera/image"


class RosbagsFlavour:
    def __init__(self, store: Any):
        self.typestore = rosbags_typesys.get_typestore(store)

    def new(self, name: str) -> Any:
        return default_instance(self.typestore.types[name])

    def wire(self, msg: Any, name: str) -> Any:
        return self.typestore.deserialize_cdr(bytes(self.typestore.serialize_cdr(msg, name)), name)


class IdlFlavour:
    def new(self, name: str) -> Any:
        return new_idl_message(name)

    def wire(self, msg: Any, name: str) -> Any:
        return type(msg).deserialize(msg.serialize())


FLAVOURS: dict[str, Callable[[], Any]] = {
    "idl": IdlFlavour,
    "rosbags-humble": lambda: RosbagsFlavour(rosbags_typesys.Stores.ROS2_HUMBLE),
    "rosbags-jazzy": lambda: RosbagsFlavour(rosbags_typesys.Stores.ROS2_JAZZY),
}


@pytest.fixture(params=sorted(FLAVOURS))
def flavour(request: pytest.FixtureRequest) -> Any:
    return FLAVOURS[request.param]()


def random_image(encoding: str, height: int = 5, width: int = 7) -> np.ndarray:
    spec = m.IMAGE_ENCODINGS[encoding]
    rng = np.random.default_rng(3)
    shape = (height, width) if spec.channels == 1 else (height, width, spec.channels)
    if spec.dtype.kind == "f":
        return rng.normal(size=shape).astype(np.float32)
    return rng.integers(0, np.iinfo(spec.dtype).max, size=shape, endpoint=True).astype(spec.dtype.newbyteorder("="))


def image_message(flavour: Any, array: np.ndarray, encoding: str, *, pad: int = 0, big_endian: bool = False) -> Any:
    """An Image built by hand (not by numpy_to_image): row padding and byte order chosen."""
    spec = m.IMAGE_ENCODINGS[encoding]
    dtype = spec.dtype.newbyteorder(">" if big_endian else "<")
    height, width = array.shape[:2]
    row = np.ascontiguousarray(array, dtype=dtype).reshape(height, -1).view(np.uint8)
    rows = np.zeros((height, row.shape[1] + pad), np.uint8)
    rows[:, : row.shape[1]] = row
    msg = flavour.new("sensor_msgs/msg/Image")
    msg.height, msg.width, msg.encoding = height, width, encoding
    msg.is_bigendian, msg.step = int(big_endian), rows.shape[1]
    msg.data = rows.reshape(-1)
    return flavour.wire(msg, "sensor_msgs/msg/Image")


# ----------------------------------------------------------------------------- images
@pytest.mark.parametrize("encoding", sorted(m.IMAGE_ENCODINGS))
def test_numpy_image_round_trip(flavour: Any, encoding: str) -> None:
    array = random_image(encoding)
    msg = m.numpy_to_image(flavour.new("sensor_msgs/msg/Image"), array, encoding, stamp_s=12.5, frame_id="cam")
    back = m.image_to_numpy(flavour.wire(msg, "sensor_msgs/msg/Image"), TOPIC)
    assert back.dtype == array.dtype and back.dtype.isnative
    np.testing.assert_array_equal(back, array)
    assert (msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id) == (12, 500_000_000, "cam")


@pytest.mark.parametrize("encoding", sorted(m.IMAGE_ENCODINGS))
@pytest.mark.parametrize("pad,big_endian", [(0, False), (5, False), (0, True), (3, True)])
def test_step_padding_and_byte_order_are_honoured(flavour: Any, encoding: str, pad: int, big_endian: bool) -> None:
    array = random_image(encoding)
    back = m.image_to_numpy(image_message(flavour, array, encoding, pad=pad, big_endian=big_endian), TOPIC)
    assert back.dtype.isnative
    np.testing.assert_array_equal(back, array)


def test_image_to_numpy_is_a_view_without_copy() -> None:
    msg = image_message(IdlFlavour(), random_image("rgb8"), "rgb8")
    assert np.shares_memory(m.image_to_numpy(msg), msg.data)


@pytest.mark.parametrize("encoding,to_rgb", [
    ("rgb8", lambda a: a),
    ("bgr8", lambda a: a[..., ::-1]),
    ("rgba8", lambda a: a[..., :3]),
    ("bgra8", lambda a: a[..., 2::-1]),
    ("mono8", lambda a: np.repeat(a[..., None], 3, axis=2)),
])
@pytest.mark.parametrize("pad", [0, 3])
def test_image_to_rgb(flavour: Any, encoding: str, to_rgb: Callable[[np.ndarray], np.ndarray], pad: int) -> None:
    array = random_image(encoding, 6, 9)
    rgb = m.image_to_rgb(image_message(flavour, array, encoding, pad=pad), TOPIC)
    assert rgb.dtype == np.uint8 and rgb.shape == (6, 9, 3) and rgb.flags.c_contiguous
    np.testing.assert_array_equal(rgb, to_rgb(array))


@pytest.mark.parametrize("encoding", ["mono16", "16UC1", "32FC1"])
def test_image_to_rgb_refuses_depth(encoding: str) -> None:
    msg = image_message(IdlFlavour(), random_image(encoding), encoding)
    with pytest.raises(MessageConversionError, match=rf"{TOPIC} \[sensor_msgs/msg/Image\].*not a colour camera"):
        m.image_to_rgb(msg, TOPIC)


def test_unsupported_encoding_lists_supported_ones() -> None:
    msg = image_message(IdlFlavour(), random_image("rgb8"), "rgb8")
    msg.encoding = "yuv422"
    with pytest.raises(MessageConversionError, match=r"/cam \[sensor_msgs/msg/Image\]: unsupported encoding 'yuv422'; "
                                                     r"supported: rgb8, bgr8.*32FC1"):
        m.image_to_numpy(msg, "/cam")


@pytest.mark.parametrize("change,match", [
    ({"data": np.zeros(30, np.uint8)}, "data has 30 bytes"),
    ({"step": 2}, "step 2 is smaller"),
    ({"height": 0}, "empty image"),
])
def test_inconsistent_images_are_refused(change: dict[str, Any], match: str) -> None:
    msg = image_message(IdlFlavour(), random_image("rgb8"), "rgb8")
    for key, value in change.items():
        setattr(msg, key, value)
    with pytest.raises(MessageConversionError, match=match):
        m.image_to_numpy(msg, TOPIC)


def test_numpy_to_image_checks_shape_and_dtype() -> None:
    with pytest.raises(MessageConversionError, match="rgb8 needs a HxWx3 array"):
        m.numpy_to_image(new_idl_message("sensor_msgs/msg/Image"), np.zeros((2, 2), np.uint8), "rgb8")
    with pytest.raises(MessageConversionError, match="16UC1 needs dtype uint16"):
        m.numpy_to_image(new_idl_message("sensor_msgs/msg/Image"), np.zeros((2, 2), np.uint8), "16UC1")


def test_image_data_of_rclpy_kind_is_read() -> None:
    import array

    rgb = random_image("rgb8")
    msg = SimpleNamespace(height=5, width=7, encoding="rgb8", is_bigendian=0, step=21,
                          data=array.array("B", rgb.tobytes()))
    np.testing.assert_array_equal(m.image_to_numpy(msg), rgb)
    filled = m.numpy_to_image(SimpleNamespace(header=SimpleNamespace(stamp=SimpleNamespace(sec=0, nanosec=0),
                                                                     frame_id=""), data=array.array("B")),
                              rgb, "rgb8")
    assert isinstance(filled.data, array.array) and filled.data.tobytes() == rgb.tobytes()


@pytest.mark.parametrize("fmt", ["jpeg", "png", "rgb8; jpeg compressed bgr8"])
def test_compressed_round_trip(flavour: Any, fmt: str) -> None:
    require_module("cv2")
    yy, xx = np.mgrid[0:48, 0:64]
    rgb = np.stack([xx * 4, yy * 5, np.full_like(xx, 200)], axis=2).astype(np.uint8)
    codec = "png" if "png" in fmt else "jpeg"
    msg = m.rgb_to_compressed(flavour.new("sensor_msgs/msg/CompressedImage"), rgb, fmt=codec, quality=95, stamp_s=1.0,
                              frame_id="wrist")
    msg.format = fmt
    back = m.compressed_image_to_rgb(flavour.wire(msg, "sensor_msgs/msg/CompressedImage"), "/wrist/compressed")
    assert back.shape == rgb.shape and back.dtype == np.uint8
    tolerance = 0 if "png" in fmt else 8
    assert np.abs(back.astype(int) - rgb.astype(int)).mean() <= tolerance


@pytest.mark.parametrize("fmt,data,match", [
    ("jpeg", bytes(10), "could not decode 10 bytes"),
    ("jpeg", b"", "empty data"),
    ("16UC1; compressedDepth png", bytes(10), "compressed depth"),
    ("webp2", bytes(10), "unsupported format 'webp2'"),
])
def test_compressed_refusals_name_topic_and_type(fmt: str, data: bytes, match: str) -> None:
    require_module("cv2")
    msg = new_idl_message("sensor_msgs/msg/CompressedImage")
    msg.format, msg.data = fmt, data
    with pytest.raises(MessageConversionError, match=rf"/wrist \[sensor_msgs/msg/CompressedImage\]: .*{match}"):
        m.compressed_image_to_rgb(msg, "/wrist")


def test_cv_bridge_gives_the_same_arrays() -> None:
    pytest.importorskip("cv_bridge", reason="cv_bridge comes only with a ROS 2 install")
    for encoding in m.IMAGE_ENCODINGS:
        msg = image_message(IdlFlavour(), random_image(encoding), encoding, pad=2)
        np.testing.assert_array_equal(m.image_to_numpy_cv_bridge(msg), m.image_to_numpy(msg))


# ----------------------------------------------------------------------------- joint states
def joint_state(flavour: Any, names: list[str], position: list[float], velocity: list[float] | None = None) -> Any:
    msg = m.fill_joint_state(flavour.new("sensor_msgs/msg/JointState"), names, position, velocity, None, stamp_s=3.25)
    return flavour.wire(msg, "sensor_msgs/msg/JointState")


def test_joint_state_to_array_reorders_and_ignores_extras(flavour: Any) -> None:
    msg = joint_state(flavour, ["finger", "j2", "j1", "j3"], [0.04, 2.0, 1.0, 3.0], [0.0, 0.2, 0.1, 0.3])
    for _ in range(3):  # cached mapping gives the same result
        np.testing.assert_array_equal(m.joint_state_to_array(msg, ["j1", "j2", "j3"]), [1.0, 2.0, 3.0])
    np.testing.assert_array_equal(m.joint_state_to_array(msg, ("j3", "j1"), "velocity"), [0.3, 0.1])
    assert m.header_seconds(msg) == 3.25
    out = m.joint_state_to_array(msg, ["j1"])
    assert out.dtype == np.float64 and out.flags.writeable


def test_joint_state_missing_joint_lists_available(flavour: Any) -> None:
    msg = joint_state(flavour, ["j1", "j2"], [1.0, 2.0])
    expected = r"/joint_states \[sensor_msgs/msg/JointState\]: missing joint\(s\) j7; the message has: j1, j2"
    with pytest.raises(MessageConversionError, match=expected):
        m.joint_state_to_array(msg, ["j1", "j7"], topic="/joint_states")


def test_joint_state_length_mismatch_and_empty_field(flavour: Any) -> None:
    msg = joint_state(flavour, ["j1", "j2"], [1.0, 2.0])
    with pytest.raises(MessageConversionError, match="2 names but 0 velocity values"):
        m.joint_state_to_array(msg, ["j1"], "velocity", topic="/joint_states")
    msg.name = ["j1", "j2", "j3"]
    with pytest.raises(MessageConversionError, match="3 names but 2 position values"):
        m.joint_state_to_array(msg, ["j1"], topic="/joint_states")


def test_joint_state_nan_names_the_joint() -> None:
    msg = SimpleNamespace(name=["j1", "j2"], position=[0.0, math.nan])
    expected = r"/js \[sensor_msgs/msg/JointState\]: non-finite position: j2=nan"
    with pytest.raises(MessageConversionError, match=expected):
        m.joint_state_to_array(msg, ["j1", "j2"], topic="/js")
    np.testing.assert_array_equal(m.joint_state_to_array(msg, ["j1"], topic="/js"), [0.0])


def test_joint_state_unknown_field() -> None:
    with pytest.raises(MessageConversionError, match="'accel' is not one of position, velocity, effort"):
        m.joint_state_to_array(SimpleNamespace(name=[], position=[]), [], "accel")


# ----------------------------------------------------------------------------- commands
def test_fill_joint_trajectory(flavour: Any) -> None:
    msg = m.fill_joint_trajectory(flavour.new("trajectory_msgs/msg/JointTrajectory"), ["a", "b"], [0.5, -1.0],
                                  stamp_s=2.5, time_from_start_s=0.1)
    back = flavour.wire(msg, "trajectory_msgs/msg/JointTrajectory")
    assert list(back.joint_names) == ["a", "b"] and len(back.points) == 1
    np.testing.assert_array_equal(back.points[0].positions, [0.5, -1.0])
    assert (back.points[0].time_from_start.sec, back.points[0].time_from_start.nanosec) == (0, 100_000_000)
    assert m.header_seconds(back) == 2.5


def test_fill_float64_multi_array_and_bool(flavour: Any) -> None:
    back = flavour.wire(m.fill_float64_multi_array(flavour.new("std_msgs/msg/Float64MultiArray"), [1.0, 2.0, 3.5]),
                        "std_msgs/msg/Float64MultiArray")
    np.testing.assert_array_equal(back.data, [1.0, 2.0, 3.5])
    assert flavour.wire(m.fill_bool(flavour.new("std_msgs/msg/Bool"), 1), "std_msgs/msg/Bool").data is True


def test_fill_joint_state_with_all_fields(flavour: Any) -> None:
    msg = m.fill_joint_state(flavour.new("sensor_msgs/msg/JointState"), ["j1", "j2"], [1, 2], [3, 4], [5, 6], 1.0)
    back = flavour.wire(msg, "sensor_msgs/msg/JointState")
    np.testing.assert_array_equal(m.joint_state_to_array(back, ["j2", "j1"], "effort"), [6.0, 5.0])


def test_fill_pose_and_twist(flavour: Any) -> None:
    pose = flavour.wire(m.fill_pose_stamped(flavour.new("geometry_msgs/msg/PoseStamped"), [0.1, 0.2, 0.3],
                                            [0.0, 0.0, 2.0, 0.0], "fr3_link0", 5.0), "geometry_msgs/msg/PoseStamped")
    assert pose.header.frame_id == "fr3_link0" and pose.pose.position.z == 0.3
    assert (pose.pose.orientation.z, pose.pose.orientation.w) == (1.0, 0.0)  # normalised
    twist = flavour.wire(m.fill_twist_stamped(flavour.new("geometry_msgs/msg/TwistStamped"), [1, 2, 3], [4, 5, 6],
                                              "tool", None), "geometry_msgs/msg/TwistStamped")
    assert (twist.twist.linear.y, twist.twist.angular.z, twist.header.frame_id) == (2.0, 6.0, "tool")


def test_fill_diagnostic_array(flavour: Any) -> None:
    msg = m.fill_diagnostic_array(flavour.new("diagnostic_msgs/msg/DiagnosticArray"),
                                  [("policy", 1, "stale", "fr3", {"age_s": "0.4"}), ("cam", 0, "", "", {})], 7.0)
    back = flavour.wire(msg, "diagnostic_msgs/msg/DiagnosticArray")
    assert [s.name for s in back.status] == ["policy", "cam"]
    assert back.status[0].level == 1 and back.status[0].values[0].key == "age_s"
    assert back.status[0].values[0].value == "0.4" and back.status[1].values == []
    # and read back by name: the first status whose name ends with the suffix
    assert m.diagnostic_values(back, "policy") == {"age_s": "0.4"}
    assert m.diagnostic_values(back, "cam") == {} and m.diagnostic_values(back, "robot") is None


@pytest.mark.parametrize("text,expected", [
    ('{"state": "recording", "episode": 3}', {"state": "recording", "episode": 3}),
    ('["not", "an", "object"]', {}),
    ("{truncated", {}),
])
def test_json_object_reads_a_status_string(text: str, expected: dict) -> None:
    msg = new_idl_message("std_msgs/String")
    msg.data = text
    assert m.json_object(msg) == expected


@pytest.mark.parametrize("call,match", [
    (lambda: m.fill_joint_trajectory(new_idl_message("trajectory_msgs/JointTrajectory"), ["a"], [math.nan], 0, 0.1,
                                     topic="/cmd"),
     r"/cmd \[trajectory_msgs/msg/JointTrajectory\]: positions has non-finite"),
    (lambda: m.fill_joint_trajectory(new_idl_message("trajectory_msgs/JointTrajectory"), ["a", "b"], [1.0], 0, 0.1),
     "positions needs 2 values, got 1"),
    (lambda: m.fill_float64_multi_array(new_idl_message("std_msgs/Float64MultiArray"), [1.0, math.inf]), "non-finite"),
    (lambda: m.fill_pose_stamped(new_idl_message("geometry_msgs/PoseStamped"), [0, 0, 0], [0, 0, 0, 0], "f", 0),
     "zero length"),
    (lambda: m.fill_diagnostic_array(new_idl_message("diagnostic_msgs/DiagnosticArray"), [("a", 7, "", "", {})], 0),
     "level 7 is not 0..3"),
])
def test_fillers_refuse_bad_commands(call: Callable[[], Any], match: str) -> None:
    with pytest.raises(MessageConversionError, match=match):
        call()


def test_rclpy_like_byte_fields_get_bytes() -> None:
    from hpt_ros.msgs._flavours import set_byte

    status = SimpleNamespace(level=b"\x00")
    set_byte(status, "level", 2)
    assert status.level == b"\x02"


# ----------------------------------------------------------------------------- stamps
@pytest.mark.parametrize("seconds,sec,nanosec", [
    (0.0, 0, 0), (1.5, 1, 500_000_000), (-1.5, -2, 500_000_000), (-1e-9, -1, 999_999_999),
    (0.9999999999, 1, 0), (1_749_315_324.951608, 1_749_315_324, 951_607_943), (7, 7, 0),
])
def test_seconds_to_stamp(seconds: float, sec: int, nanosec: int) -> None:
    stamp = m.seconds_to_stamp(SimpleNamespace(), seconds)
    assert (stamp.sec, stamp.nanosec) == (sec, nanosec)
    assert m.stamp_to_seconds(stamp) == pytest.approx(seconds, abs=1e-9)


@pytest.mark.parametrize("seconds", [math.nan, math.inf, 2.0**31, -(2.0**31) - 1])
def test_seconds_to_stamp_refuses_unrepresentable(seconds: float) -> None:
    with pytest.raises(ValueError):
        m.seconds_to_stamp(SimpleNamespace(), seconds)


# ----------------------------------------------------------------------------- vectors
def test_pose_twist_and_multi_array_to_arrays(flavour: Any) -> None:
    pose = flavour.wire(m.fill_pose_stamped(flavour.new("geometry_msgs/msg/PoseStamped"), [1, 2, 3], [0, 0, 0, 1],
                                            "f", 0.0), "geometry_msgs/msg/PoseStamped")
    np.testing.assert_array_equal(m.pose_to_array(pose), [1, 2, 3, 0, 0, 0, 1])
    twist = flavour.wire(m.fill_twist_stamped(flavour.new("geometry_msgs/msg/TwistStamped"), [1, 2, 3], [4, 5, 6],
                                              "f", 0.0), "geometry_msgs/msg/TwistStamped")
    np.testing.assert_array_equal(m.twist_to_array(twist), [1, 2, 3, 4, 5, 6])
    array = m.fill_float64_multi_array(flavour.new("std_msgs/msg/Float64MultiArray"), [9.0, 1.0, 2.0])
    array.layout.data_offset = 1
    np.testing.assert_array_equal(m.float64_multi_array_to_array(flavour.wire(array, "std_msgs/msg/Float64MultiArray")),
                                  [1.0, 2.0])


def test_vectors_refuse_nan() -> None:
    pose = new_idl_message("geometry_msgs/msg/PoseStamped")
    pose.pose.position.y = math.nan
    expected = r"/ee \[geometry_msgs/msg/PoseStamped\]: non-finite value\(s\) in y"
    with pytest.raises(MessageConversionError, match=expected):
        m.pose_to_array(pose, "/ee")
