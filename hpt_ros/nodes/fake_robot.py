"""fake_robot: a simulated Franka in MuJoCo feeding a dog (what franka_ros2 calls fake hardware).

    ros2 run hpt_ros fake_robot --ros-args -p robot_config:=franka_fr3
    hpt-ros fake-robot --robot franka_fr3 [--components arm|cameras|all] [--view]

Two components, in one process by default:

* ``arm``: the physics (``hpt_ros.sim.FeedDogSim``: the arm on position actuators, the
  Franka Hand, a treat, a bowl). Follows the spec's command topic and gripper topic,
  publishes the spec's JointState topic at ``joint_state_rate_hz`` (up to 1 kHz), the
  treat's pose on ``/fake_robot/treat_pose`` and the task's state on
  ``/fake_robot/task_status`` (std_msgs/String, JSON: episode, success, time to success).
* ``cameras``: renders the wrist view (spec view 0) and the third-person view (view 1)
  at ``camera_rate_hz`` as rgb8 Images. Run on its own (``components:=cameras``) it
  follows ``/joint_states`` and the treat's pose, as a real camera sees the real arm, so
  it can be killed and restarted without touching the arm.

``/fake_robot/reset`` (std_msgs/Float64MultiArray ``[episode]``) starts a new episode:
the arm goes back to the ready pose, the hand opens and the treat lies at the place
drawn for ``(seed, episode)``.
"""

from __future__ import annotations

import argparse
import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from hpt_ros.msgs import messages
from hpt_ros.nodes.runner import run_node
from hpt_ros.ros.transport import QOS_DEFAULT, QOS_LATCHED, QOS_SENSOR_DATA, Transport
from hpt_ros.spec import RobotSpec, load_spec
from hpt_ros.view.options import add_view_arguments, view_options

__all__ = ["FakeRobot", "RESET_TOPIC", "TASK_STATUS_TOPIC", "TREAT_POSE_TOPIC", "cli", "load_task", "main"]

RESET_TOPIC = "/fake_robot/reset"
TREAT_POSE_TOPIC = "/fake_robot/treat_pose"
TASK_STATUS_TOPIC = "/fake_robot/task_status"
_STATUS_PERIOD_S = 0.1


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
    """The simulated Franka on a transport: arm (physics) and/or cameras."""

    def __init__(self, transport: Transport, spec: RobotSpec | None = None):
        from hpt_ros.sim.feed_dog import FeedDogSim

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
        self.width = int(p("width", 224, "camera width [px]"))
        self.height = int(p("height", 224, "camera height [px]"))
        if not 0 < self.joint_state_rate_hz <= 1000:
            raise ValueError(f"parameter joint_state_rate_hz: expected 0 < rate <= 1000, found {self.joint_state_rate_hz}")
        if not 0 < self.camera_rate_hz <= 120:
            raise ValueError(f"parameter camera_rate_hz: expected 0 < rate <= 120, found {self.camera_rate_hz}")
        episode = int(p("episode", 0, "first episode index"))
        self._lock = threading.Lock()
        self.sim = FeedDogSim(self.task, self.seed, episode)
        self.joint_state_topic = spec.state_sensors[0].topic
        self._names = list(self.sim.joint_names())
        transport.create_subscription(RESET_TOPIC, "std_msgs/msg/Float64MultiArray", self._on_reset, QOS_DEFAULT)
        self.has_physics = components in ("arm", "all")
        if self.has_physics:
            self._setup_arm()
        if components in ("cameras", "all"):
            self._setup_cameras(own_arm=self.has_physics)
        transport.logger.info("fake %s ready (%s, MuJoCo): joint states %s, episode %d, treat at %s", spec.name,
                              components, self.joint_state_topic, episode,
                              np.round(self.sim.layout.treat_xy, 3).tolist())

    # -- arm ---------------------------------------------------------------------------------
    def _setup_arm(self) -> None:
        spec, t = self.spec, self.transport
        self._js_pub = t.create_publisher(self.joint_state_topic, "sensor_msgs/msg/JointState", QOS_DEFAULT)
        self._treat_pub = t.create_publisher(TREAT_POSE_TOPIC, "geometry_msgs/msg/PoseStamped", QOS_DEFAULT)
        self._status_pub = t.create_publisher(TASK_STATUS_TOPIC, "std_msgs/msg/String", QOS_LATCHED)
        command = spec.action.command
        t.create_subscription(command.topic, command.type, self._on_command, QOS_DEFAULT)
        if spec.action.gripper is not None:
            g = spec.action.gripper
            t.create_subscription(g.topic, g.type, self._on_gripper, QOS_DEFAULT)
        self._last_step = t.now()
        self._last_status = -1e9
        self._treat_every = max(1, int(round(self.joint_state_rate_hz / 100.0)))  # the treat's pose at <= 100 Hz
        self._ticks = 0
        t.create_timer(1.0 / self.joint_state_rate_hz, self._on_physics, group="physics")

    def _set_targets(self, names: list[str], positions: list[float], topic: str) -> None:
        if len(names) != len(positions) or not np.all(np.isfinite(positions)):
            self.transport.logger.error("%s: ignoring a command with %d names and %d positions (or non-finite)",
                                        topic, len(names), len(positions))
            return
        try:
            with self._lock:
                self.sim.set_targets(names, positions)
        except KeyError as exc:
            self.transport.logger.error("%s: ignoring a command: %s", topic, exc.args[0])

    def _on_command(self, msg: Any) -> None:
        kind = self.spec.action.command.type
        if kind.endswith("JointTrajectory"):
            if not msg.points:
                return
            names, positions = list(msg.joint_names), list(msg.points[-1].positions)
        elif kind.endswith("Float64MultiArray"):
            names, positions = list(self.spec.action.arm_joints), list(msg.data)
        else:
            names, positions = list(msg.name), list(msg.position)
        self._set_targets(names, positions, self.spec.action.command.topic)

    def _on_gripper(self, msg: Any) -> None:
        g = self.spec.action.gripper
        assert g is not None
        values = list(msg.data) if g.type.endswith("Float64MultiArray") else list(msg.position)
        if len(values) == 1:
            self._set_targets([g.joint], values, g.topic)

    def _on_physics(self) -> None:
        t = self.transport
        now = t.now()
        with self._lock:
            dt = min(max(now - self._last_step, 0.0), 0.1)
            self._last_step = now
            self.sim.step(dt)
            positions = self.sim.joint_positions()
            velocities = self.sim.joint_velocities()
            treat = self.sim.treat_position()
            treat_quat = self.sim.treat_quaternion()
            snapshot = self.sim.snapshot()
        msg = t.new_message("sensor_msgs/msg/JointState")
        messages.fill_joint_state(msg, self._names, positions, velocities=velocities, stamp_s=now,
                                  topic=self.joint_state_topic)
        self._js_pub.publish(msg)
        self._camera_state = snapshot
        self._ticks += 1
        if self._ticks % self._treat_every == 0:
            pose = t.new_message("geometry_msgs/msg/PoseStamped")
            messages.fill_pose_stamped(pose, treat, [*treat_quat[1:], treat_quat[0]], "world", now,
                                       topic=TREAT_POSE_TOPIC)
            self._treat_pub.publish(pose)
        if now - self._last_status >= _STATUS_PERIOD_S:
            self._last_status = now
            self.publish_status()

    def status(self) -> dict[str, Any]:
        """The episode's task state (what ``/fake_robot/task_status`` carries)."""
        with self._lock:
            sim = self.sim
            return {"episode": sim.episode, "seed": self.seed, "success": sim.success(),
                    "time_to_success": sim.time_to_success, "elapsed": round(sim.elapsed, 4),
                    "treat": np.round(sim.treat_position(), 4).tolist(),
                    "bowl": [round(v, 4) for v in sim.layout.bowl_xy]}

    def publish_status(self) -> None:
        msg = self.transport.new_message("std_msgs/msg/String")
        msg.data = json.dumps(self.status())
        self._status_pub.publish(msg)

    # -- cameras -------------------------------------------------------------------------------
    def _setup_cameras(self, own_arm: bool) -> None:
        t = self.transport
        views = self.spec.image_sensors
        if len(views) != 2:
            raise ValueError(f"{self.spec.source}: the fake robot renders 2 views (wrist, third person), "
                             f"the spec has {len(views)}")
        for s in views:
            if s.type != "sensor_msgs/msg/Image":
                raise ValueError(f"{self.spec.source}: sensors.{s.name}.type: the fake robot publishes "
                                 f"sensor_msgs/msg/Image, the spec expects {s.type}")
        self._camera_pubs = [(s, t.create_publisher(s.topic, "sensor_msgs/msg/Image", QOS_SENSOR_DATA)) for s in views]
        self._renderer = None  # made in the thread that renders (a GL context is bound to its thread)
        self._camera_state: tuple[np.ndarray, np.ndarray] | None = None
        if not own_arm:
            self._seen_joints = False
            self._camera_qpos, self._camera_mocap = self.sim.snapshot()
            t.create_subscription(self.joint_state_topic, "sensor_msgs/msg/JointState", self._on_joint_state,
                                  QOS_DEFAULT)
            t.create_subscription(TREAT_POSE_TOPIC, "geometry_msgs/msg/PoseStamped", self._on_treat_pose, QOS_DEFAULT)
        t.create_timer(1.0 / self.camera_rate_hz, self._on_camera, group="cameras")

    def _on_joint_state(self, msg: Any) -> None:
        try:
            q = messages.joint_state_to_array(msg, self._names[:8], topic=self.joint_state_topic)
        except messages.MessageConversionError:
            return  # a JointState of some other joints: keep the last pose
        with self._lock:
            self._camera_qpos = self.sim.compose_qpos(self._camera_qpos, joints=q)
            self._camera_state = (self._camera_qpos, self._camera_mocap.copy())

    def _on_treat_pose(self, msg: Any) -> None:
        pose = messages.pose_to_array(msg, topic=TREAT_POSE_TOPIC)
        with self._lock:
            self._camera_qpos = self.sim.compose_qpos(self._camera_qpos, treat_pose=[*pose[:3], pose[6], *pose[3:6]])

    def _on_camera(self) -> None:
        state = self._camera_state
        if state is None:
            return  # no arm pose yet: a camera with nothing to show publishes nothing
        if self._renderer is None:
            from hpt_ros.sim.feed_dog import SceneRenderer

            self._renderer = SceneRenderer(self.sim.model, self.width, self.height)
        images = self._renderer.render(*state)
        now = self.transport.now()
        for (sensor, pub), rgb in zip(self._camera_pubs, images):
            msg = self.transport.new_message("sensor_msgs/msg/Image")
            messages.numpy_to_image(msg, rgb, "rgb8", stamp_s=now, frame_id=f"{sensor.name}_optical_frame")
            pub.publish(msg)

    # -- episodes ------------------------------------------------------------------------------
    def _on_reset(self, msg: Any) -> None:
        data = list(msg.data)
        episode = int(data[0]) if data else self.sim.episode + 1
        with self._lock:
            layout = self.sim.reset(episode)
            if self.has_physics:
                self._camera_state = self.sim.snapshot()
                self._last_status = -1e9
            else:
                self._camera_qpos, self._camera_mocap = self.sim.snapshot()
        self.transport.logger.info("episode %d: treat at %s", episode, np.round(layout.treat_xy, 3).tolist())


# -- entry points -------------------------------------------------------------------------------

def main(args: list[str] | None = None) -> None:
    """``ros2 run hpt_ros fake_robot`` (rclpy transport)."""
    run_node(FakeRobot, "rclpy", "fake_robot", args=args)


def cli(argv: list[str], prog: str = "hpt-ros fake-robot") -> int:
    """``hpt-ros fake-robot`` (dds transport)."""
    parser = argparse.ArgumentParser(prog=prog, description="Simulated Franka feeding a dog (MuJoCo): joint states "
                                                            "and two cameras over DDS.")
    parser.add_argument("--robot", default="franka_fr3", help="robot spec YAML or shipped name")
    parser.add_argument("--components", default="all", choices=["all", "arm", "cameras"])
    parser.add_argument("--task", default="feed_dog")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--episode", type=int, default=0)
    parser.add_argument("--joint-state-rate-hz", type=float, default=100.0)
    parser.add_argument("--camera-rate-hz", type=float, default=30.0)
    parser.add_argument("--width", type=int, default=224)
    parser.add_argument("--height", type=int, default=224)
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    add_view_arguments(parser)
    args = parser.parse_args(argv)
    parameters = {"robot_config": args.robot, "components": args.components, "task": args.task, "seed": args.seed,
                  "episode": args.episode, "joint_state_rate_hz": args.joint_state_rate_hz,
                  "camera_rate_hz": args.camera_rate_hz, "width": args.width, "height": args.height}
    name = "fake_robot" if args.components == "all" else f"fake_robot_{args.components}"
    return run_node(FakeRobot, "dds", name, parameters=parameters, duration_s=args.duration, view=view_options(args))
