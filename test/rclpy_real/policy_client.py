"""An rclpy client of the policy node for the tests: feeds joint states and two cameras,
records the commands, and calls the node's lifecycle services."""

from __future__ import annotations

import threading
import time

import numpy as np
import rclpy
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rclpy.executors import MultiThreadedExecutor
from rclpy.qos import qos_profile_sensor_data
from sensor_msgs.msg import Image, JointState
from trajectory_msgs.msg import JointTrajectory

Q_START = [0.0, -0.3, 0.0, -2.0, 0.0, 1.9, 0.8, 0.02]


class PolicyClient:
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
