"""The policy node with simulated inference latency on the replay clock: synchronous ticks that
wait for it (their commands late, the ticks meanwhile skipped), asynchronous ticks that do
not, the same commands on every run, and a short closed loop on the MuJoCo robot.

The scripted loop: a sibling node echoes each command into the joint states (the robot
goes where it is told) and publishes tiny camera frames; the engine steers from the
measured state, so a late command changes what follows.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hpt_ros.engine.base import Engine
from hpt_ros.msgs import messages
from hpt_ros.nodes.policy_node import PolicyNode
from hpt_ros.ros.replay import ReplayTransport
from hpt_ros.spec import parse_spec

from conftest import require_module
from test_runtime_helpers import tiny_data

PERIOD = 0.125  # the tiny spec's 8 Hz


class SteeringEngine(Engine):
    """Heads for (0.8, 0.4) from the measured state, a tenth of the way per step."""

    backend = "scripted"

    def __init__(self, horizon: int = 8) -> None:
        self.horizon, self.action_dim, self.state_dim, self.num_views = horizon, 2, 2, 2
        self.calls = 0

    def predict(self, images: np.ndarray, state: np.ndarray) -> np.ndarray:
        self.calls += 1
        goal = np.array([0.8, 0.4])
        steps = np.arange(1, self.horizon + 1)[:, None] * 0.1
        return (state[0] + steps * (goal - state[0]))[None].astype(np.float32)


class ReachEngine(Engine):
    """For the Franka spec: moves joint 1 towards +0.3 rad from the measured state, 0.01 rad per step."""

    backend = "scripted"
    horizon, action_dim, state_dim, num_views = 8, 8, 8, 2

    def predict(self, images: np.ndarray, state: np.ndarray) -> np.ndarray:
        chunk = np.repeat(state[:, None, :], 8, axis=1)
        chunk[:, :, 0] = np.minimum(state[:, None, 0] + 0.01 * np.arange(1, 9), 0.3)
        return chunk.astype(np.float32)


def loop_spec(**execution):
    data = tiny_data()
    data["action"]["horizon"] = 8
    data["safety"]["require_enable"] = False
    data["execution"].update(execution)
    return parse_spec(data, "tiny_loop.yaml")


def run_loop(spec, seconds: float = 3.0):
    """Run the scripted loop; the commands the node published as (time, [a, b])."""
    world = ReplayTransport("robot", start_time=0.0, record=["/cmd"])
    position = [np.array([0.0, 0.1])]
    cameras = {t: world.create_publisher(t, "sensor_msgs/msg/Image") for t in ("/cam0", "/cam1")}
    joints = world.create_publisher("/joint_states", "sensor_msgs/msg/JointState")
    frame = np.zeros((4, 6, 3), np.uint8)

    def publish_cameras() -> None:
        for pub in cameras.values():
            pub.publish(messages.numpy_to_image(world.new_message("sensor_msgs/msg/Image"), frame, "rgb8",
                                                stamp_s=world.now()))

    def publish_joints() -> None:
        joints.publish(messages.fill_joint_state(world.new_message("sensor_msgs/msg/JointState"), ["a", "b"],
                                                 position[0], stamp_s=world.now()))

    world.create_subscription("/cmd", "std_msgs/msg/Float64MultiArray",
                              lambda m: position.__setitem__(0, np.asarray(m.data, dtype=np.float64)))
    world.create_timer(PERIOD / 2, publish_cameras)
    world.create_timer(PERIOD / 4, publish_joints)
    node = PolicyNode(world.sibling("policy_node"), spec=spec, engine=SteeringEngine())
    world.run(until=seconds)
    sent = [(p.time, np.asarray(p.msg.data, dtype=np.float64)) for p in world.published_on("/cmd")]
    stats = node.runtime.stats()
    for t in (node.transport, world):
        t.shutdown()
    return sent, stats


def test_a_synchronous_tick_waits_its_simulated_latency_and_the_ticks_meanwhile_are_skipped() -> None:
    sent, stats = run_loop(loop_spec(inference_latency_ms=300), seconds=2.0)
    times = [t for t, _ in sent]
    # the tick at 0.125 s sends at 0.425 s; the ticks at 0.25 and 0.375 s fall inside its inference and
    # are skipped; the tick at 0.5 s sends at 0.8 s, and so on: one command every 3 periods, 0.3 s stale
    assert times[:3] == pytest.approx([0.425, 0.8, 1.175])
    assert all(b - a == pytest.approx(0.375) for a, b in zip(times, times[1:]))
    assert stats.ticks == len(sent) + 1 and stats.holds == 0  # the last tick was still inside its inference at 2 s


def test_asynchronous_execution_commands_every_tick_while_inference_runs() -> None:
    sent, stats = run_loop(loop_spec(**{"async": True, "inference_latency_ms": 300}), seconds=2.0)
    times = [t for t, _ in sent]
    assert all(b - a == pytest.approx(PERIOD) for a, b in zip(times, times[1:]))  # no tick waits
    assert stats.dropped_steps > 0 and stats.inferences < stats.ticks  # late chunks, one job at a time


@pytest.mark.parametrize("execution", [{"async": True, "inference_latency_ms": 300},
                                       {"async": False, "inference_latency_ms": 300},
                                       {"async": True, "mode": "replan", "inference_latency_ms": 200}])
def test_replay_with_simulated_latency_gives_the_same_commands_on_every_run(execution) -> None:
    spec = loop_spec(**execution)
    first, _ = run_loop(spec)
    second, _ = run_loop(spec)
    assert len(first) > 5
    assert [t for t, _ in first] == [t for t, _ in second]
    assert all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, second))
    no_latency, _ = run_loop(loop_spec(**{**execution, "inference_latency_ms": 0}))
    assert not all(np.array_equal(a, b) for (_, a), (_, b) in zip(first, no_latency))  # latency mattered


def test_asynchronous_execution_on_the_mujoco_robot() -> None:
    require_module("mujoco")
    from hpt_ros.evaluate.sim_eval import run_sim_episode
    from hpt_ros.spec import load_spec

    spec = load_spec("franka_fr3")
    execution = dataclasses.replace(spec.execution, asynchronous=True, inference_latency_ms=100.0, deadline_ms=150.0)
    spec = dataclasses.replace(spec, execution=execution)

    result = run_sim_episode(spec, ReachEngine(), seed=3, episode=0, max_seconds=2.0, width=64, height=64)
    assert result.commands >= 20  # 15 Hz for 2 s, less the ticks before the first chunk arrived
    assert result.inference_failures == 0 and set(result.hold_reasons) <= {"missing wrist_camera",
                                                                          "missing third_person_camera",
                                                                          "missing joint_states", "no action"}
    assert 0 < result.max_joint_step <= 0.5 * 2.62 / 15 + 1e-9  # moving, within the safety step
