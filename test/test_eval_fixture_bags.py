"""Replay evaluation and the replay transport on bags made by other tools (``../shared/fixtures/bags``).

The talker bags (official rosbag2 recorder; sqlite3 and mcap, metadata v4, QoS text that
differs from the db3's) open and replay, but lack the spec's topics: a clear
missing-topic error. The rosbags-rs bags (Foxy definitions, metadata v5) carry Image and
JointState on other topic names: missing-topic errors with the Franka spec, and with a
spec pointed at their topics, an error naming the topic whose messages do not convert.
"""

from __future__ import annotations

import pathlib
from typing import Any

import numpy as np
import pytest
from conftest import require_shared
import yaml

from hpt_ros.engine.base import Engine
from hpt_ros.evaluate.api import evaluate_bags
from hpt_ros.msgs.idl import MESSAGE_TYPES
from hpt_ros.ros.replay import ReplayTransport
from hpt_ros.spec import load_spec, parse_spec

SPEC_PATH = pathlib.Path(__file__).resolve().parents[1] / "config" / "robots" / "franka_fr3.yaml"
TALKERS = ["rosbag2_mcap_talker", "rosbag2_sqlite3_talker"]
RS = ["rosbags_rs_test_bag_mcap", "rosbags_rs_test_bag_sqlite3"]


def bag_path(name: str) -> pathlib.Path:
    return require_shared("bags", name)


class NeverEngine(Engine):
    """These bags fail before any inference: an engine that must not be called."""

    backend = "test"

    def __init__(self, spec: Any):
        self.horizon, self.action_dim = spec.action.horizon, spec.action.dim
        self.state_dim, self.num_views = spec.state_dim, spec.num_views

    def predict(self, images: np.ndarray, state: np.ndarray) -> np.ndarray:
        raise AssertionError("no bag here should get as far as inference")


@pytest.mark.parametrize("name", TALKERS + RS)
def test_franka_spec_on_foreign_bags_reports_the_missing_topic(name, tmp_path):
    bag = bag_path(name)
    spec = load_spec(SPEC_PATH)
    metrics = evaluate_bags([bag], spec, None, tmp_path, engine=NeverEngine(spec), plots=False, progress=False)
    entry = metrics["episodes"][str(bag)]
    assert entry["status"] == "error" and entry["error_type"] == "BagTopicError"
    assert entry["topic"] == "/wrist_camera/color/image_raw"
    assert str(bag) in entry["error"] and "'/wrist_camera/color/image_raw'" in entry["error"]
    assert "not in the bag (expected type sensor_msgs/msg/Image)" in entry["error"]
    assert ("'/topic'" if name in TALKERS else "'/test/sensor_msgs/image'") in entry["error"]  # what the bag has
    assert metrics["overall"]["episodes_failed"] == 1 and (tmp_path / "report.md").exists()


def test_spec_on_the_rosbags_rs_topics_names_the_topic_that_does_not_convert(tmp_path):
    bag = bag_path(RS[0])
    raw = yaml.safe_load(SPEC_PATH.read_text())
    sensors = raw["sensors"]
    sensors["wrist_camera"]["topic"] = "/test/sensor_msgs/image"
    sensors["third_person_camera"].update(topic="/test/sensor_msgs/compressed_image",
                                          type="sensor_msgs/msg/CompressedImage")
    sensors["joint_states"]["topic"] = "/test/sensor_msgs/joint_state"
    raw["action"]["command"] = {"topic": "/test/std_msgs/float64_multi_array", "type": "std_msgs/msg/Float64MultiArray"}
    raw["action"]["gripper"]["topic"] = "/test/std_msgs/float64_multi_array"
    spec = parse_spec(raw, "rosbags_rs.yaml")
    metrics = evaluate_bags([bag, bag_path(RS[1])], spec, None, tmp_path, engine=NeverEngine(spec), plots=False,
                            progress=False)
    for entry in metrics["episodes"].values():
        # the 640x480 rgb8 Image of that generator holds 30 bytes of data
        assert entry["status"] == "error" and entry["topic"] == "/test/sensor_msgs/image", entry
        assert entry["bag"] in entry["error"] and "sensor 'wrist_camera'" in entry["error"]
        assert "data has 30 bytes" in entry["error"]

    sensors["wrist_camera"]["type"] = "sensor_msgs/msg/CompressedImage"  # exists, but as Image in the bag
    spec = parse_spec(raw, "rosbags_rs.yaml")
    entry = evaluate_bags([bag], spec, None, tmp_path / "typed", engine=NeverEngine(spec), plots=False,
                          progress=False)["episodes"][str(bag)]
    assert entry["topic"] == "/test/sensor_msgs/image"
    assert "expected type sensor_msgs/msg/CompressedImage, found sensor_msgs/msg/Image" in entry["error"]


@pytest.mark.parametrize("name", TALKERS)
def test_talker_bags_replay_with_idl_structs_and_rosbags_dataclasses(name):
    bag = bag_path(name)
    t = ReplayTransport("listener")
    got: list[tuple[str, int, Any]] = []
    t.create_subscription("/topic", "std_msgs/msg/String", lambda m: got.append(("topic", t.now_ns(), m)))
    t.create_subscription("/rosout", "rcl_interfaces/msg/Log", lambda m: got.append(("rosout", t.now_ns(), m)))
    feed = t.feed_bag(bag)  # QoS text in metadata.yaml differs from the storage's: still every message
    t.run()
    strings = [m for kind, _, m in got if kind == "topic"]
    assert [m.data for m in strings] == [f"Hello, world! {i}" for i in range(10)]
    assert all(type(m) is MESSAGE_TYPES["std_msgs/msg/String"] for m in strings)
    logs = [m for kind, _, m in got if kind == "rosout"]
    assert len(logs) == 10 and all(hasattr(m, "msg") and hasattr(m, "level") for m in logs)  # rosbags dataclasses
    times = [ns for _, ns, _ in got]
    assert times == sorted(times) and times[0] == feed.start_ns and t.now_ns() == feed.end_ns


@pytest.mark.parametrize("name", RS)
def test_rosbags_rs_bags_replay_foxy_messages(name):
    bag = bag_path(name)
    t = ReplayTransport("listener")
    got: dict[str, list[Any]] = {}
    for topic, msg_type in [("/test/sensor_msgs/image", "sensor_msgs/msg/Image"),
                            ("/test/sensor_msgs/joint_state", "sensor_msgs/msg/JointState"),
                            ("/test/sensor_msgs/multi_dof_joint_state", "sensor_msgs/msg/MultiDOFJointState")]:
        t.create_subscription(topic, msg_type, lambda m, topic=topic: got.setdefault(topic, []).append(m))
    t.feed_bag(bag)
    t.run()
    image = got["/test/sensor_msgs/image"][0]
    assert type(image) is MESSAGE_TYPES["sensor_msgs/msg/Image"] and (image.width, image.height) == (640, 480)
    joint = got["/test/sensor_msgs/joint_state"][0]
    assert list(joint.name) == ["joint1", "joint2", "joint3"] and np.allclose(joint.position, [0.1, 0.2, 0.3])
    multi = got["/test/sensor_msgs/multi_dof_joint_state"]
    assert len(multi) == 2 and list(multi[0].joint_names) == ["joint1", "joint2"]  # a rosbags dataclass
