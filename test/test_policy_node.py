"""The policy node on the simulated clock: end-effector pose and twist commands, a malformed
sensor message, the values in /diagnostics, and a clock that loops back.

Sensors are published by a sibling node of the replay transport (in process, no DDS); the
node runs the real runtime with a scripted engine that returns the same chunk every tick.
Tiny spec (test_runtime_helpers) with 6-dim end-effector actions: 8 Hz, horizon 3.
"""

from __future__ import annotations

import logging
import math

import numpy as np
import pytest

from hpt_ros.engine.base import Engine
from hpt_ros.msgs import messages
from hpt_ros.nodes.policy_node import DIAGNOSTICS_TOPIC, PolicyNode
from hpt_ros.ros.replay import ReplayTransport
from hpt_ros.runtime import CLOCK_JUMP_REASON
from hpt_ros.spec import parse_spec

from test_runtime_helpers import tiny_data

IMAGE = np.zeros((4, 6, 3), np.uint8)


class ChunkEngine(Engine):
    """Returns ``action`` at every step of every chunk."""

    backend = "scripted"

    def __init__(self, action, horizon: int = 3) -> None:
        self.action = np.asarray(action, dtype=np.float32)
        self.horizon, self.action_dim, self.state_dim, self.num_views = horizon, len(self.action), 2, 2
        self.calls = 0

    def predict(self, images: np.ndarray, state: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.broadcast_to(self.action, (1, self.horizon, self.action_dim)).copy()


def ee_spec(kind: str, camera_max_age: float = 0.25):
    data = tiny_data()
    msg_type = "geometry_msgs/msg/PoseStamped" if kind == "ee_pose" else "geometry_msgs/msg/TwistStamped"
    data["action"] = {"kind": kind, "horizon": 3, "frame": "base", "command": {"topic": "/ee_cmd", "type": msg_type}}
    for name in ("cam0", "cam1"):
        data["sensors"][name]["max_age"] = camera_max_age
    return parse_spec(data, f"{kind}.yaml")


class Sensors:
    """A sibling node that publishes the tiny spec's cameras and joint states."""

    def __init__(self, world: ReplayTransport) -> None:
        self.world = world
        self.cameras = {t: world.create_publisher(t, "sensor_msgs/msg/Image") for t in ("/cam0", "/cam1")}
        self.joints = world.create_publisher("/joint_states", "sensor_msgs/msg/JointState")

    def camera(self, topic: str, image: np.ndarray = IMAGE) -> None:
        msg = messages.numpy_to_image(self.world.new_message("sensor_msgs/msg/Image"), image, "rgb8",
                                      stamp_s=self.world.now())
        self.cameras[topic].publish(msg)

    def joint_state(self, positions=(0.1, 0.2)) -> None:
        msg = messages.fill_joint_state(self.world.new_message("sensor_msgs/msg/JointState"), ["a", "b"], positions,
                                        stamp_s=self.world.now())
        self.joints.publish(msg)

    def all(self) -> None:
        for topic in self.cameras:
            self.camera(topic)
        self.joint_state()


def make_world(spec, engine, camera_period: float = 0.125):
    world = ReplayTransport("sensors", start_time=0.0, record=["/ee_cmd", DIAGNOSTICS_TOPIC])
    sensors = Sensors(world)
    world.create_timer(camera_period, lambda: [sensors.camera(t) for t in sensors.cameras])
    world.create_timer(0.125, sensors.joint_state)
    node = PolicyNode(world.sibling("policy_node", {"auto_enable": True}), spec=spec, engine=engine)
    return world, sensors, node


def commands(world: ReplayTransport):
    return [p for p in world.published if p.topic == "/ee_cmd"]


def quaternion_matrix(q) -> np.ndarray:
    x, y, z, w = q
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])  # fmt: skip


def rpy_matrix(roll: float, pitch: float, yaw: float) -> np.ndarray:
    """R = Rz(yaw) Ry(pitch) Rx(roll), the ROS fixed-axis convention."""
    cr, sr, cp, sp, cy, sy = (math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch),
                              math.cos(yaw), math.sin(yaw))
    rx = np.array([[1, 0, 0], [0, cr, -sr], [0, sr, cr]])
    ry = np.array([[cp, 0, sp], [0, 1, 0], [-sp, 0, cp]])
    rz = np.array([[cy, -sy, 0], [sy, cy, 0], [0, 0, 1]])
    return rz @ ry @ rx


# -- end-effector commands ------------------------------------------------------------------------

def test_ee_pose_commands_are_pose_stamped_in_the_action_frame():
    pose = [0.45, -0.1, 0.3, 0.3, -0.2, 1.0]
    world, _, _ = make_world(ee_spec("ee_pose"), ChunkEngine(pose))
    world.run(until=1.0)
    sent = commands(world)
    assert len(sent) == 8  # a command at every tick from the first (sensors arrive before it)
    for p in sent:
        msg = p.msg
        assert msg.header.frame_id == "base"
        assert messages.header_seconds(msg) == pytest.approx(p.time, abs=1e-9)
        position = [msg.pose.position.x, msg.pose.position.y, msg.pose.position.z]
        assert position == pytest.approx(pose[:3])
        q = [msg.pose.orientation.x, msg.pose.orientation.y, msg.pose.orientation.z, msg.pose.orientation.w]
        assert np.linalg.norm(q) == pytest.approx(1.0)
        np.testing.assert_allclose(quaternion_matrix(q), rpy_matrix(*pose[3:]), atol=1e-9)


def test_ee_twist_commands_ramp_from_rest_as_twist_stamped():
    twist = [1.0, 0.0, -0.1, 0.0, 0.0, -1.0]
    world, _, _ = make_world(ee_spec("ee_twist"), ChunkEngine(twist))
    world.run(until=0.5)
    sent = commands(world)
    assert len(sent) == 4
    got = [[m.twist.linear.x, m.twist.linear.y, m.twist.linear.z, m.twist.angular.x, m.twist.angular.y,
            m.twist.angular.z] for m in (p.msg for p in sent)]
    # change per tick 0.125 m/s and 0.25 rad/s from a zero twist, then the speed limits 0.25 m/s, 0.5 rad/s
    assert got[0] == pytest.approx([0.125, 0, -0.1, 0, 0, -0.25])
    assert got[1] == pytest.approx([0.25, 0, -0.1, 0, 0, -0.5])
    assert got[3] == pytest.approx([0.25, 0, -0.1, 0, 0, -0.5])
    assert all(p.msg.header.frame_id == "base" for p in sent)
    assert [messages.header_seconds(p.msg) for p in sent] == pytest.approx([p.time for p in sent])


# -- malformed input ------------------------------------------------------------------------------

def test_malformed_sensor_message_is_logged_once_and_holds(caplog):
    world, sensors, node = make_world(ee_spec("ee_pose"), ChunkEngine([0.4, 0, 0.3, 0, 0, 0]))
    world.run(until=0.5)
    assert len(commands(world)) == 4
    good = sensors.camera
    short = world.new_message("sensor_msgs/msg/Image")
    messages.numpy_to_image(short, IMAGE, "rgb8")
    short.data = bytes(30)  # 4x6 rgb8 needs 72 bytes

    def broken_cam0(topic: str, image: np.ndarray = IMAGE) -> None:
        if topic == "/cam0":
            sensors.cameras[topic].publish(short)
        else:
            good(topic, image)

    sensors.camera = broken_cam0
    with caplog.at_level(logging.ERROR, logger="hpt_ros.policy_node"):
        world.run(until=1.5)  # 8 broken frames: the node keeps running
    errors = [r for r in caplog.records if r.name == "hpt_ros.policy_node" and r.levelno >= logging.ERROR]
    assert len(errors) == 1, [r.getMessage() for r in errors]
    assert errors[0].getMessage().startswith("/cam0 [sensor_msgs/msg/Image]: ") and "30 bytes" in errors[0].getMessage()
    # the last good cam0 frame (t=0.5) ages out: held, nothing commanded until a good frame
    assert node.last_result.held and node.last_result.reason == "stale cam0"
    assert len(commands(world)) == 4 + 2  # ticks at 0.625 and 0.75 (age 0.25 is still fresh)
    sensors.camera = good
    world.run(until=2.0)
    assert not node.last_result.held and len(commands(world)) == 6 + 4


# -- diagnostics ----------------------------------------------------------------------------------

def diagnostics(world: ReplayTransport) -> list[tuple[float, int, str, dict[str, str]]]:
    out = []
    for p in world.published:
        if p.topic == DIAGNOSTICS_TOPIC:
            (status,) = p.msg.status
            level = status.level if isinstance(status.level, int) else int.from_bytes(bytes(status.level), "little")
            out.append((p.time, level, status.message, {kv.key: kv.value for kv in status.values}))
    return out


def test_diagnostics_report_rate_latency_ages_and_state():
    spec = ee_spec("ee_pose", camera_max_age=0.5)
    world, _, _ = make_world(spec, ChunkEngine([0.4, 0, 0.3, 0, 0, 0]), camera_period=0.3)
    world.run(until=3.0)
    reports = diagnostics(world)
    assert [t for t, *_ in reports] == pytest.approx([1.0, 2.0, 3.0])
    t, level, message, values = reports[0]
    assert level == 0 and message == "commanding" and values["safety_state"] == "commanding"
    # the control tick at 1.0 runs before the report at 1.0 (timers at one instant: creation order);
    # the first camera frames come at 0.3: ticks 0.125 and 0.25 held ("missing cam0"), one hold event
    assert values["ticks"] == "8" and values["commands"] == "6" and values["held_ticks"] == "2"
    assert float(values["rate_hz"]) == pytest.approx(8.0) and values["target_rate_hz"] == "8"
    p50, p99 = float(values["inference_p50_ms"]), float(values["inference_p99_ms"])
    assert 0 < p50 <= p99
    # cameras every 0.3 s (last at 0.9), joints every 0.125 s (last at 1.0)
    assert float(values["age_cam0_s"]) == pytest.approx(0.1) and float(values["age_cam1_s"]) == pytest.approx(0.1)
    assert float(values["age_joints_s"]) == pytest.approx(0.0)
    assert values["received_cam0"] == values["received_cam1"] == "3"  # frames at 0.3, 0.6, 0.9
    assert values["inference_failures"] == "0" and values["hold_events"] == "1"
    _, _, _, later = reports[2]
    assert later["ticks"] == "24" and later["commands"] == "22"
    assert later["received_cam0"] == later["received_cam1"] == "10"
    assert float(later["age_cam0_s"]) == pytest.approx(0.0)  # a camera frame at 3.0


def test_diagnostics_of_a_node_without_sensors_say_never_and_error():
    world = ReplayTransport("empty", start_time=0.0, record=[DIAGNOSTICS_TOPIC])
    PolicyNode(world.sibling("policy_node", {"auto_enable": True}), spec=ee_spec("ee_pose"),
               engine=ChunkEngine([0.4, 0, 0.3, 0, 0, 0]))
    world.run(until=1.0)
    ((_, level, message, values),) = diagnostics(world)
    assert level == 2 and message.startswith("missing ") and values["safety_state"] == message
    assert values["age_cam0_s"] == "never" and values["age_joints_s"] == "never"
    assert values["inference_p50_ms"] == "n/a" and values["commands"] == "0" and values["held_ticks"] == "8"


def test_diagnostics_while_disabled_warn():
    world = ReplayTransport("sensors", start_time=0.0, record=["/ee_cmd", DIAGNOSTICS_TOPIC])
    sensors = Sensors(world)
    world.create_timer(0.125, sensors.all)
    PolicyNode(world.sibling("policy_node"), spec=ee_spec("ee_pose"), engine=ChunkEngine([0.4, 0, 0.3, 0, 0, 0]))
    world.run(until=1.0)
    ((_, level, message, values),) = diagnostics(world)
    assert level == 1 and message == "disabled" and values["commands"] == "0"
    assert float(values["inference_p50_ms"]) > 0  # the dry run still infers
    assert commands(world) == []


def test_diagnostics_warn_while_a_spec_mismatch_is_allowed():
    from hpt_ros.spec.compat import SpecComparison

    spec = ee_spec("ee_pose", camera_max_age=0.5)
    engine = ChunkEngine([0.4, 0, 0.3, 0, 0, 0])
    engine.spec_comparison = SpecComparison(differences=("view 0 sensor: model 'a', spec 'b'",))
    world, _, _ = make_world(spec, engine)
    world.run(until=1.0)
    ((_, level, message, values),) = diagnostics(world)
    assert message == "commanding" and level == 1
    assert values["spec_mismatch"] == "view 0 sensor: model 'a', spec 'b'"


# -- clock jump ---------------------------------------------------------------------------------------

def test_node_on_a_looping_clock_resets_holds_and_resumes():
    """Sim time loops back (a bag played with --loop): the node holds, then commands on the new timeline."""
    world, sensors, node = make_world(ee_spec("ee_pose"), ChunkEngine([0.4, 0, 0.3, 0, 0, 0]))
    world.run(until=1.0)
    assert not node.last_result.held
    before = len(commands(world))
    # what the transport does when /clock restarts: the node's control tick now sees t = 0.0
    clock = {"t": 0.0}
    node.transport.now = lambda: clock["t"]
    node._on_control_tick()
    assert node.last_result.held and node.last_result.reason == CLOCK_JUMP_REASON
    assert len(commands(world)) == before
    clock["t"] = 0.125
    sensors.joint_state()
    for topic in sensors.cameras:
        sensors.camera(topic)
    world.run(until=world.now())  # deliver them (stamped by the node's clock on receipt)
    node._on_control_tick()
    assert not node.last_result.held and node.last_result.activated and node.last_result.tick == 1
    assert len(commands(world)) == before + 1
