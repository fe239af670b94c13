"""The managed policy node under real rclpy, driven by a real lifecycle client.

The node runs as its own process (``--ros-args -p``, as ``ros2 run`` starts it); the test
process is an rclpy node that feeds joint states and two cameras, watches the commands,
and calls the node's ``change_state`` / ``get_state`` services.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

from conftest import ROOT

Q_START = [0.0, -0.3, 0.0, -2.0, 0.0, 1.9, 0.8, 0.02]


class LifecycleClient:
    """Sensors in, commands out, and the lifecycle services of /policy_node."""

    def __init__(self, spec) -> None:
        rclpy.init()
        self.node = rclpy.create_node("lifecycle_test_client")
        self.commands: list[tuple[float, np.ndarray]] = []
        self.lock = threading.Lock()
        self.change = self.node.create_client(ChangeState, "/policy_node/change_state")
        self.get = self.node.create_client(GetState, "/policy_node/get_state")
        self.node.create_subscription(JointTrajectory, spec.action.command.topic, self._on_command, 10)
        self.joints = self.node.create_publisher(JointState, "/joint_states", 10)
        self.cameras = [self.node.create_publisher(Image, s.topic, qos_profile_sensor_data) for s in spec.image_sensors]
        self.joint_names = [j for s in spec.state_sensors for j in s.joints]
        frame = np.random.default_rng(0).integers(0, 256, (120, 160, 3), dtype=np.uint8)
        self.image = Image(height=120, width=160, encoding="rgb8", step=480)
        self.image.data = frame.tobytes()
        self.node.create_timer(0.02, self._publish_sensors)
        self.executor = MultiThreadedExecutor(num_threads=2)
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self.executor.spin, daemon=True)
        self.thread.start()

    def _publish_sensors(self) -> None:
        stamp = self.node.get_clock().now().to_msg()
        self.joints.publish(JointState(name=self.joint_names, position=Q_START))
        self.image.header.stamp = stamp
        for pub in self.cameras:
            pub.publish(self.image)

    def _on_command(self, msg: JointTrajectory) -> None:
        with self.lock:
            self.commands.append((time.monotonic(), np.array(msg.points[0].positions)))

    def commands_since(self, t0: float) -> list[np.ndarray]:
        with self.lock:
            return [q for t, q in self.commands if t >= t0]

    def call(self, client, request, timeout: float = 60.0):
        assert client.wait_for_service(timeout_sec=timeout), f"{client.srv_name} did not appear"
        future = client.call_async(request)
        deadline = time.monotonic() + timeout
        while not future.done() and time.monotonic() < deadline:
            time.sleep(0.01)
        assert future.done(), f"{client.srv_name}: no answer in {timeout} s"
        return future.result()

    def call_until_answered(self, client, request, timeout: float = 60.0):
        """Repeat a request that has no effect until it is answered: a service is found as soon
        as its request reader matches, but a reply sent before the reply writer matched the
        client is lost."""
        assert client.wait_for_service(timeout_sec=timeout), f"{client.srv_name} did not appear"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            future = client.call_async(request)
            answer_by = time.monotonic() + 1.0
            while not future.done() and time.monotonic() < answer_by:
                time.sleep(0.01)
            if future.done():
                return future.result()
            client.remove_pending_request(future)
        raise AssertionError(f"{client.srv_name}: no answer in {timeout} s")

    def transition(self, transition_id: int) -> bool:
        return self.call(self.change, ChangeState.Request(transition=Transition(id=transition_id))).success

    def state(self) -> str:
        return self.call(self.get, GetState.Request()).current_state.label

    def close(self) -> None:
        self.executor.shutdown()
        self.node.destroy_node()
        rclpy.try_shutdown()


def wait_until(predicate, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture
def tiny_model(tmp_path, franka_spec, tiny_policy):
    from hpt_ros.model import save_checkpoint

    path = tmp_path / "tiny_model"
    save_checkpoint(path, tiny_policy, {"robot": franka_spec.name})
    return path


def test_lifecycle_transitions_from_a_real_client(tmp_path, franka_spec, tiny_model) -> None:
    log_path = tmp_path / "node.log"
    with open(log_path, "w") as log:
        node = subprocess.Popen(
            # the console script, as ros2 run starts it
            [os.path.join(os.path.dirname(sys.executable), "policy_lifecycle_node"), "--ros-args", "-p",
             f"model:={tiny_model}",
             "-p", "rate_hz:=10.0", "-p", "auto_enable:=true"],
            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=log, stderr=subprocess.STDOUT)
    client = LifecycleClient(franka_spec)
    try:
        assert client.call_until_answered(client.get, GetState.Request()).current_state.label == "unconfigured"
        # -- an invalid transition is refused, and the node stays up --------------------------
        activate = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_ACTIVATE))
        assert client.call_until_answered(client.change, activate).success is False
        assert client.state() == "unconfigured" and node.poll() is None

        # -- configure: spec, model, warm-up; inactive = no command -----------------------------
        assert client.transition(Transition.TRANSITION_CONFIGURE) is True
        assert client.state() == "inactive"
        t_inactive = time.monotonic()
        time.sleep(1.0)
        assert client.commands_since(t_inactive) == [], "commands while inactive"

        # -- activate: commands, the first one from the measured state ------------------------
        t_active = time.monotonic()
        assert client.transition(Transition.TRANSITION_ACTIVATE) is True
        assert client.state() == "active"
        wait_until(lambda: len(client.commands_since(t_active)) >= 5, 30, "commands after activate")
        arm = franka_spec.action.arm_joints
        _, _, velocity = franka_spec.joint_limits_arrays(arm)
        max_step = franka_spec.safety.max_velocity_fraction * velocity / 10.0
        first = client.commands_since(t_active)[0]
        assert np.all(np.abs(first - np.array(Q_START[:7])) <= max_step + 1e-6), (first, Q_START)

        # -- deactivate: hold ----------------------------------------------------------------
        assert client.transition(Transition.TRANSITION_DEACTIVATE) is True
        time.sleep(0.5)
        t_held = time.monotonic()
        time.sleep(1.0)
        assert client.commands_since(t_held) == [], "commands while deactivated"

        # -- re-activate: from the measured state again ------------------------------------------
        t_again = time.monotonic()
        assert client.transition(Transition.TRANSITION_ACTIVATE) is True
        wait_until(lambda: len(client.commands_since(t_again)) >= 2, 30, "commands after re-activate")
        again = client.commands_since(t_again)[0]
        assert np.all(np.abs(again - np.array(Q_START[:7])) <= max_step + 1e-6), (again, Q_START)
        assert client.transition(Transition.TRANSITION_DEACTIVATE) is True

        # -- cleanup releases the subscriptions; a second cleanup is refused ----------------------
        assert client.transition(Transition.TRANSITION_CLEANUP) is True
        assert client.state() == "unconfigured"
        wait_until(lambda: client.joints.get_subscription_count() == 0, 10, "the joint-state subscription to go")
        assert client.transition(Transition.TRANSITION_CLEANUP) is False
        assert node.poll() is None

        # -- configure again, then shut down from inactive -----------------------------------
        assert client.transition(Transition.TRANSITION_CONFIGURE) is True
        assert client.transition(Transition.TRANSITION_INACTIVE_SHUTDOWN) is True
        assert client.state() == "finalized"
    finally:
        if node.poll() is None:
            node.send_signal(signal.SIGINT)
        try:
            rc = node.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()
            rc = node.wait()
        client.close()
    text = log_path.read_text()
    assert "transition 3 is not available in state 'unconfigured'" in text, text[-3000:]
    assert rc == 0, f"the node exited with {rc}:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]
