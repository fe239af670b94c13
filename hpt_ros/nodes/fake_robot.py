"""fake_robot: a kinematic Franka FR3 stand-in (what franka_ros2 calls fake hardware).

    ros2 run hpt_ros fake_robot --ros-args -p robot_config:=franka_fr3
    hpt-ros fake-robot --robot franka_fr3 [--components arm|cameras|all]

Two components, in one process by default:

* ``arm``: publishes the spec's JointState topic at ``joint_state_rate_hz`` (up to
  1 kHz) and follows the commanded joints (the spec's command topic and gripper topic)
  within the FR3's velocity limits.
* ``cameras``: renders the wrist view (spec view 0) and the third-person view (view 1)
  at ``camera_rate_hz`` from the arm's joint states and the episode's scene (a dog bowl
  whose position varies per episode), and publishes them as rgb8 Images. It follows
  ``/joint_states`` like a real camera follows the real arm, so it can run as its own
  process (and be killed and restarted on its own).

``/fake_robot/reset`` (std_msgs/Float64MultiArray ``[episode]``) starts a new episode:
the arm goes back to the ready pose and the bowl moves.
"""

from __future__ import annotations

import argparse
import threading
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hpt_ros.nodes.runner import run_node
from hpt_ros.ros import messages
from hpt_ros.ros.transport import QOS_DEFAULT, QOS_SENSOR_DATA, Transport
from hpt_ros.sim.arm import KinematicArm
from hpt_ros.sim.scene import FeedDogScene
from hpt_ros.spec import RobotSpec, load_spec

__all__ = ["FakeRobot", "RESET_TOPIC", "cli", "load_task", "main"]

RESET_TOPIC = "/fake_robot/reset"
MIRROR_FINGER = "fr3_finger_joint2"


def load_task(name_or_path: str) -> dict[str, Any]:
    """A task YAML (a path or a name in config/tasks) as a mapping."""
    path = Path(name_or_path)
    if not path.is_file():
        from hpt_ros.resources import config_dir

        path = config_dir() / "tasks" / f"{name_or_path}.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"task {name_or_path!r}: no such file (nor config/tasks/{name_or_path}.yaml)")
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping at the top level")
    return data


class FakeRobot:
    """The fake FR3 on a transport: arm and/or cameras."""

    def __init__(self, transport: Transport, spec: RobotSpec | None = None):
        self.transport = transport
        p = transport.declare_parameter
        spec = spec if spec is not None else load_spec(p("robot_config", "franka_fr3", "robot spec YAML or name"))
        self.spec = spec
        components = str(p("components", "all", "arm | cameras | all"))
        if components not in ("arm", "cameras", "all"):
            raise ValueError(f"parameter components: expected arm, cameras or all, found {components!r}")
        self.task = load_task(str(p("task", "feed_dog", "task YAML or name in config/tasks")))
        self.seed = int(p("seed", 0, "scene seed"))
        self.joint_state_rate_hz = float(p("joint_state_rate_hz", 100.0, "JointState rate [Hz], up to 1000"))
        self.camera_rate_hz = float(p("camera_rate_hz", 30.0, "camera frame rate [Hz]"))
        self.width = int(p("width", 640, "camera width [px]"))
        self.height = int(p("height", 480, "camera height [px]"))
        if not 0 < self.joint_state_rate_hz <= 1000:
            raise ValueError(f"parameter joint_state_rate_hz: expected 0 < rate <= 1000, found {self.joint_state_rate_hz}")
        episode = int(p("episode", 0, "first episode index"))
        self._lock = threading.Lock()
        self.scene = FeedDogScene.from_task(self.task, self.seed, episode)
        state_sensor = spec.state_sensors[0]
        self.joint_state_topic = state_sensor.topic

        transport.create_subscription(RESET_TOPIC, "std_msgs/msg/Float64MultiArray", self._on_reset, QOS_DEFAULT)
        self.arm: KinematicArm | None = None
        if components in ("arm", "all"):
            self._setup_arm()
        self._camera_q: np.ndarray | None = None
        if components in ("cameras", "all"):
            self._setup_cameras(own_arm=components == "all")
        transport.logger.info("fake %s ready (%s): joint states %s, episode %d, bowl at %s", spec.name, components,
                              self.joint_state_topic, episode, np.round(self.scene.target_position, 3).tolist())

    # -- arm ---------------------------------------------------------------------------------
    def _setup_arm(self) -> None:
        spec, t = self.spec, self.transport
        self.arm = KinematicArm.from_spec(spec)
        self._ready = self.arm.q.copy()
        self._names = list(self.arm.names)
        self._js_pub = t.create_publisher(self.joint_state_topic, "sensor_msgs/msg/JointState", QOS_DEFAULT)
        command = spec.action.command
        t.create_subscription(command.topic, command.type, self._on_command, QOS_DEFAULT)
        if spec.action.gripper is not None:
            g = spec.action.gripper
            t.create_subscription(g.topic, g.type, self._on_gripper, QOS_DEFAULT)
        self._last_step = t.now()
        t.create_timer(1.0 / self.joint_state_rate_hz, self._on_physics, group="physics")

    def _on_command(self, msg: Any) -> None:
        assert self.arm is not None
        kind = self.spec.action.command.type
        if kind.endswith("JointTrajectory"):
            if not msg.points:
                return
            names, positions = list(msg.joint_names), list(msg.points[-1].positions)
        elif kind.endswith("Float64MultiArray"):
            names, positions = list(self.spec.action.arm_joints), list(msg.data)
        else:
            names, positions = list(msg.name), list(msg.position)
        if len(names) != len(positions) or not np.all(np.isfinite(positions)):
            self.transport.logger.error("%s: ignoring a command with %d names and %d positions (or non-finite)",
                                        self.spec.action.command.topic, len(names), len(positions))
            return
        with self._lock:
            self.arm.set_target(names, positions)

    def _on_gripper(self, msg: Any) -> None:
        assert self.arm is not None and self.spec.action.gripper is not None
        g = self.spec.action.gripper
        values = list(msg.data) if g.type.endswith("Float64MultiArray") else list(msg.position)
        if len(values) == 1 and np.isfinite(values[0]):
            with self._lock:
                self.arm.set_target([g.joint], values)

    def _on_physics(self) -> None:
        assert self.arm is not None
        now = self.transport.now()
        with self._lock:
            dt = min(max(now - self._last_step, 0.0), 0.1)
            self._last_step = now
            self.arm.step(dt)
            positions = self.arm.positions()  # commanded joints, then the mirrored finger
            velocities = self.arm.velocities()
        names = self._names
        msg = self.transport.new_message("sensor_msgs/msg/JointState")
        messages.fill_joint_state(msg, names, positions, velocities=velocities, stamp_s=now,
                                  topic=self.joint_state_topic)
        self._js_pub.publish(msg)
        self._camera_q = positions

    # -- cameras -------------------------------------------------------------------------------
    def _setup_cameras(self, own_arm: bool) -> None:
        t = self.transport
        views = self.spec.image_sensors
        if len(views) != 2:
            raise ValueError(f"{self.spec.source}: the fake robot renders 2 views (wrist, third person), "
                             f"the spec has {len(views)}")
        self._camera_pubs = [(s, t.create_publisher(s.topic, "sensor_msgs/msg/Image", QOS_SENSOR_DATA)) for s in views]
        for s in views:
            if s.type != "sensor_msgs/msg/Image":
                raise ValueError(f"{self.spec.source}: sensors.{s.name}.type: the fake robot publishes "
                                 f"sensor_msgs/msg/Image, the spec expects {s.type}")
        self._camera_names = list(self.spec.action.arm_joints) + ["fr3_finger_joint1"]
        if not own_arm:
            t.create_subscription(self.joint_state_topic, "sensor_msgs/msg/JointState", self._on_joint_state,
                                  QOS_DEFAULT)
        t.create_timer(1.0 / self.camera_rate_hz, self._on_camera, group="cameras")

    def _on_joint_state(self, msg: Any) -> None:
        try:
            names = list(msg.name)
            position = list(msg.position)
            self._camera_q = np.array([position[names.index(n)] for n in self._camera_names[:7]]
                                      + [position[names.index("fr3_finger_joint1")]
                                         if "fr3_finger_joint1" in names else 0.04])
        except (ValueError, IndexError):
            pass  # a JointState of some other joints: keep the last pose

    def _on_camera(self) -> None:
        q = self._camera_q
        if q is None:
            return  # no arm pose yet: a camera with nothing to show publishes nothing
        with self._lock:
            scene = self.scene
        wrist, third = scene.render(q[:7], float(q[7]), width=self.width, height=self.height)
        now = self.transport.now()
        for (sensor, pub), rgb in zip(self._camera_pubs, (wrist, third)):
            msg = self.transport.new_message("sensor_msgs/msg/Image")
            messages.numpy_to_image(msg, rgb, "rgb8", stamp_s=now, frame_id=f"{sensor.name}_optical_frame")
            pub.publish(msg)

    # -- episodes ------------------------------------------------------------------------------
    def _on_reset(self, msg: Any) -> None:
        data = list(msg.data)
        episode = int(data[0]) if data else self.scene.episode + 1
        with self._lock:
            self.scene = FeedDogScene.from_task(self.task, self.seed, episode)
            if self.arm is not None:
                self.arm.reset(self._ready)
        self.transport.logger.info("episode %d: bowl at %s", episode, np.round(self.scene.target_position, 3).tolist())


# -- entry points -------------------------------------------------------------------------------

def main(args: list[str] | None = None) -> None:
    """``ros2 run hpt_ros fake_robot`` (rclpy transport)."""
    run_node(FakeRobot, "rclpy", "fake_robot", args=args)


def cli(argv: list[str], prog: str = "hpt-ros fake-robot") -> int:
    """``hpt-ros fake-robot`` (dds transport)."""
    parser = argparse.ArgumentParser(prog=prog, description="Fake Franka FR3 (joint states + two cameras) over DDS.")
    parser.add_argument("--robot", default="franka_fr3", help="robot spec YAML or shipped name")
    parser.add_argument("--components", default="all", choices=["all", "arm", "cameras"])
    parser.add_argument("--task", default="feed_dog")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episode", type=int, default=0)
    parser.add_argument("--joint-state-rate-hz", type=float, default=100.0)
    parser.add_argument("--camera-rate-hz", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args(argv)
    parameters = {"robot_config": args.robot, "components": args.components, "task": args.task, "seed": args.seed,
                  "episode": args.episode, "joint_state_rate_hz": args.joint_state_rate_hz,
                  "camera_rate_hz": args.camera_rate_hz, "width": args.width, "height": args.height}
    name = "fake_robot" if args.components == "all" else f"fake_robot_{args.components}"
    return run_node(FakeRobot, "dds", name, parameters=parameters, duration_s=args.duration)
