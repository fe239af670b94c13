"""The simulated robot's topic contract, on simulated time: what franka_ros2's fake hardware offers, plus the task."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from hpt_ros.sim import mjcf  # sets MUJOCO_GL before mujoco is imported

from conftest import require_module

require_module("mujoco")

from hpt_ros.msgs import messages  # noqa: E402
from hpt_ros.nodes.fake_robot import RESET_TOPIC, TASK_STATUS_TOPIC, TREAT_POSE_TOPIC, FakeRobot  # noqa: E402
from hpt_ros.ros.replay import ReplayTransport  # noqa: E402
from hpt_ros.sim.feed_dog import episode_layout  # noqa: E402
from hpt_ros.sim.kinematics import READY_POSE  # noqa: E402
from hpt_ros.spec import load_spec  # noqa: E402

SPEC = load_spec("franka_fr3")
JOINTS = [f"fr3_joint{i}" for i in range(1, 8)] + ["fr3_finger_joint1", "fr3_finger_joint2"]


def _world(**params):
    world = ReplayTransport("fake_robot", {"width": 64, "height": 48, "camera_rate_hz": 15.0, "seed": 2,
                                           "joint_state_rate_hz": 100.0, **params}, start_time=100.0)
    return world, FakeRobot(world, SPEC)


def test_topics_rates_types_and_the_task_status() -> None:
    world, robot = _world()
    world.run(until=101.0)
    js = world.published_on(SPEC.state_sensors[0].topic)
    assert 99 <= len(js) <= 101
    assert list(js[-1].msg.name) == JOINTS and len(js[-1].msg.velocity) == 9
    for sensor in SPEC.image_sensors:
        frames = world.published_on(sensor.topic)
        assert 14 <= len(frames) <= 16
        img = frames[-1].msg
        assert (img.width, img.height, img.encoding) == (64, 48, "rgb8")
        assert img.header.frame_id == f"{sensor.name}_optical_frame"
    wrist = messages.image_to_rgb(world.published_on(SPEC.image_sensors[0].topic)[-1].msg)
    third = messages.image_to_rgb(world.published_on(SPEC.image_sensors[1].topic)[-1].msg)
    assert not np.array_equal(wrist, third)
    treat = messages.pose_to_array(world.published_on(TREAT_POSE_TOPIC)[-1].msg)
    layout = episode_layout(robot.task, 2, 0)
    assert np.allclose(treat[:2], layout.treat_xy, atol=3e-3)
    status = json.loads(world.published_on(TASK_STATUS_TOPIC)[-1].msg.data)
    assert status["episode"] == 0 and status["success"] is False and status["bowl"] == list(layout.bowl_xy)


def test_commands_move_the_arm_and_reset_starts_a_new_episode(caplog) -> None:
    world, robot = _world()
    t = world.sibling("test")
    cmd = t.create_publisher(SPEC.action.command.topic, SPEC.action.command.type)
    grip = t.create_publisher(SPEC.action.gripper.topic, SPEC.action.gripper.type)
    reset = t.create_publisher(RESET_TOPIC, "std_msgs/msg/Float64MultiArray")
    target = READY_POSE + np.array([0.2, -0.1, 0.1, 0.2, 0.0, 0.1, -0.2])

    def send() -> None:
        msg = messages.fill_joint_trajectory(t.new_message(SPEC.action.command.type), SPEC.action.arm_joints,
                                             target, t.now(), 0.1)
        cmd.publish(msg)
        grip.publish(messages.fill_float64_multi_array(t.new_message(SPEC.action.gripper.type), [0.015]))

    t.create_timer(0.5, send)
    world.run(until=102.5)
    q = robot.sim.joint_positions()
    assert np.abs(q[:7] - target).max() < 0.01 and q[7] == pytest.approx(0.015, abs=2e-3)

    # malformed commands are refused with one error each, the arm keeps its target
    bad = t.new_message(SPEC.action.command.type)
    bad.joint_names = ["fr3_joint1", "fr3_joint9"]
    with caplog.at_level(logging.ERROR):
        robot._on_command(messages.fill_joint_trajectory(bad, ["fr3_joint1", "fr3_joint9"], [0.0, 0.0], 0.0, 0.1))
        robot._on_command(_nan_command(t))
    assert "fr3_joint9" in caplog.text and "non-finite" in caplog.text

    reset.publish(messages.fill_float64_multi_array(t.new_message("std_msgs/msg/Float64MultiArray"), [3.0]))
    world.run(until=102.6)
    assert robot.sim.episode == 3
    assert np.abs(robot.sim.joint_positions()[:7] - READY_POSE).max() < 0.05
    assert np.allclose(robot.sim.treat_position()[:2], episode_layout(robot.task, 2, 3).treat_xy, atol=3e-3)


def _nan_command(t):
    """A well-formed trajectory whose positions are NaN (fill_* refuses to build one)."""
    msg = messages.fill_joint_trajectory(t.new_message(SPEC.action.command.type), SPEC.action.arm_joints,
                                         READY_POSE, 0.0, 0.1)
    msg.points[0].positions = [float("nan")] * 7
    return msg


def test_a_camera_only_process_renders_what_joint_states_and_the_treat_pose_say() -> None:
    world, robot = _world()
    cameras = FakeRobot(world.sibling("fake_robot_cameras", {"components": "cameras", "width": 64, "height": 48,
                                                             "camera_rate_hz": 15.0, "seed": 2}), SPEC)
    assert not cameras.has_physics
    world.run(until=100.5)
    # both renderers see the same arm and treat: the camera process's frames equal the physics process's
    frames = world.published_on(SPEC.image_sensors[1].topic)
    by_time: dict[float, list[np.ndarray]] = {}
    for p in frames:
        by_time.setdefault(round(p.time, 6), []).append(messages.image_to_rgb(p.msg))
    pairs = [v for v in by_time.values() if len(v) == 2]
    assert pairs, "the two processes never published at the same tick"
    diff = np.abs(pairs[-1][0].astype(int) - pairs[-1][1].astype(int))
    assert diff.mean() < 1.0
