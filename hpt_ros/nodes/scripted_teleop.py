"""scripted_teleop: a teleoperator with no human, for recording demonstrations on the fake robot.

    python -m hpt_ros.nodes.scripted_teleop --robot franka_fr3 --seed 0 --episode 0
    (``hpt-ros teleop ...`` once the dispatcher lists it; ``ros2 run hpt_ros scripted_teleop``
    once setup.py lists ``scripted_teleop = hpt_ros.nodes.scripted_teleop:main``)

Subscribes to the spec's JointState topic and the simulated treat's pose
(``/fake_robot/treat_pose``: what a person would see) and, at the spec's control rate,
follows :class:`~hpt_ros.sim.expert.FeedDogExpert` — pick the treat, carry it over the
bowl, drop it, with recovery noise on the arm targets (``noise``, ``perturbation``) and
rough line-ups over the treat corrected on the way down (``approach_error``) —
publishing what a person's teleop rig would: the spec's command (a one-point
JointTrajectory on the command topic, or Float64MultiArray / JointState) and the gripper
target (Float64MultiArray ``[finger]``) on the gripper topic.

``/fake_robot/reset`` (std_msgs/Float64MultiArray ``[episode]``) starts over with that
episode: the same ``seed``, ``episode`` and ``task`` parameters as the fake robot give
the same bowl. After a reset it waits ``reset_hold_s`` for joint states of the
reset arm before commanding again (a command computed from a pre-reset pose would pull
the arm back).

Like a person watching the recorder's indicator, it moves only while the teleop
recorder says it is recording (``/hpt_recorder/status``, ``follow_recorder``), so every
episode starts from the reset pose; with no recorder running it moves right away.
"""

from __future__ import annotations

import argparse
import sys
import threading
from typing import Any

import numpy as np

from hpt_ros.msgs import messages
from hpt_ros.nodes.runner import as_bool, run_node
from hpt_ros.ros.transport import QOS_DEFAULT, QOS_LATCHED, Transport
from hpt_ros.sim.expert import FeedDogExpert
from hpt_ros.sim.feed_dog import episode_layout
from hpt_ros.spec import RobotSpec, load_spec

from .fake_robot import RESET_TOPIC, TREAT_POSE_TOPIC, load_task

__all__ = ["RECORDER_STATUS_TOPIC", "ScriptedTeleopNode", "cli", "main"]

#: the teleop recorder's latched status (hpt_ros.nodes.teleop_recorder.STATUS_TOPIC)
RECORDER_STATUS_TOPIC = "/hpt_recorder/status"


class ScriptedTeleopNode:
    """FeedDogExpert on a transport: joint states and the treat's pose in, the spec's commands out."""

    def __init__(self, transport: Transport, spec: RobotSpec | None = None):
        self.transport = transport
        self.log = transport.logger
        p = transport.declare_parameter
        spec = spec if spec is not None else load_spec(p("robot_config", "franka_fr3", "robot spec YAML or name"))
        self.spec = spec
        self.task = load_task(str(p("task", "feed_dog", "task YAML or name in config/tasks")))
        self.seed = int(p("seed", 0, "scene seed (the fake robot's)"))
        episode = int(p("episode", 0, "first episode index (the fake robot's)"))
        self.noise = float(p("noise", 0.01, "Gaussian noise on the arm targets [rad]"))
        self.perturbation = float(p("perturbation", 0.03, "occasional larger perturbations of the arm targets [rad]"))
        self.approach_error = float(p("approach_error", 0.0,
                                      "how far off the treat it lines up before descending [m] (0: on the treat)"))
        self.missed_grasp = float(p("missed_grasp", 0.0, "share of episodes whose first grasp closes 2-3.5 cm "
                                                         "beside the treat, then recovers (0: none)"))
        rate_hz = float(p("rate_hz", 0.0, "command rate [Hz]; 0 = the spec's control rate"))
        self.reset_hold_s = float(p("reset_hold_s", 0.2, "after a reset, wait this long before commanding [s]"))
        self.follow_recorder = as_bool(p("follow_recorder", True, "move only while the recorder records"))
        status_topic = str(p("recorder_status_topic", RECORDER_STATUS_TOPIC, "the recorder's status topic"))
        self.rate_hz = rate_hz if rate_hz > 0 else spec.rate_hz
        action = spec.action
        if action.kind != "joint_position":
            raise ValueError(f"{spec.source}: the scripted teleoperator produces joint targets; "
                             f"action.kind {action.kind!r} is not supported")
        if action.gripper is None:
            raise ValueError(f"{spec.source}: the scripted teleoperator needs action.gripper (the finger target)")
        self.arm_joints = tuple(action.arm_joints)
        self._read_joints = list(self.arm_joints) + [action.gripper.joint]
        self._state_topic = spec.state_sensors[0].topic
        self._limits = spec.joint_limits_arrays(self._read_joints)
        self._lock = threading.Lock()
        self._q: np.ndarray | None = None
        self._treat: np.ndarray | None = None
        self._resume_at = 0.0
        self.recorder_state: str | None = None  # None: no recorder seen
        self.episode = episode
        self.teleop = self._make_teleop(episode)
        self.commands_sent = 0

        self._command_pub = transport.create_publisher(action.command.topic, action.command.type, QOS_DEFAULT)
        self._gripper_pub = transport.create_publisher(action.gripper.topic, action.gripper.type, QOS_DEFAULT)
        transport.create_subscription(self._state_topic, "sensor_msgs/msg/JointState", self._on_joint_state,
                                      QOS_DEFAULT)
        transport.create_subscription(TREAT_POSE_TOPIC, "geometry_msgs/msg/PoseStamped", self._on_treat_pose,
                                      QOS_DEFAULT)
        transport.create_subscription(RESET_TOPIC, "std_msgs/msg/Float64MultiArray", self._on_reset, QOS_DEFAULT)
        if self.follow_recorder:
            transport.create_subscription(status_topic, "std_msgs/msg/String", self._on_recorder_status, QOS_LATCHED)
        transport.create_timer(1.0 / self.rate_hz, self._on_tick, group="teleop")
        self.log.info("scripted teleoperator: %s at %g Hz -> %s + %s, episode %d, bowl at %s", spec.name,
                      self.rate_hz, action.command.topic, action.gripper.topic, episode,
                      np.round(self.bowl_xy, 3).tolist())

    def _make_teleop(self, episode: int) -> FeedDogExpert:
        if sorted(self.arm_joints) != sorted(f"fr3_joint{i}" for i in range(1, 8)):
            raise ValueError(f"{self.spec.source}: the feed-dog expert drives the 7 FR3 arm joints, "
                             f"the spec's action has {list(self.arm_joints)}")
        self.bowl_xy = episode_layout(self.task, self.seed, episode).bowl_xy
        lower, upper, velocity = self._limits
        return FeedDogExpert(lower, upper, velocity, rate_hz=self.rate_hz,
                             max_velocity_fraction=self.spec.safety.max_velocity_fraction,
                             rng=np.random.default_rng([self.seed, episode, 7]), noise=self.noise,
                             perturbation=self.perturbation, approach_error=self.approach_error,
                             missed_grasp=self.missed_grasp)

    # -- callbacks -----------------------------------------------------------------------------
    def _on_joint_state(self, msg: Any) -> None:
        try:
            q = messages.joint_state_to_array(msg, self._read_joints, topic=self._state_topic)
        except messages.MessageConversionError:
            return  # some other joints on the topic
        with self._lock:
            self._q = q

    def _on_treat_pose(self, msg: Any) -> None:
        treat = messages.pose_to_array(msg, topic=TREAT_POSE_TOPIC)[:3]
        with self._lock:
            self._treat = treat

    def _on_reset(self, msg: Any) -> None:
        data = list(msg.data)
        episode = int(data[0]) if data else self.episode + 1
        with self._lock:
            self.teleop = self._make_teleop(episode)
            self.episode, self._q, self._treat = episode, None, None
            self._resume_at = self.transport.now() + self.reset_hold_s
        self.log.info("episode %d: bowl at %s", episode, np.round(self.bowl_xy, 3).tolist())

    def _on_recorder_status(self, msg: Any) -> None:
        state = messages.json_object(msg).get("state")
        if isinstance(state, str):
            self.recorder_state = state

    def _on_tick(self) -> None:
        now = self.transport.now()
        with self._lock:
            q, teleop, treat = self._q, self.teleop, self._treat
            if q is None or treat is None or now < self._resume_at:
                return
            if self.recorder_state not in (None, "recording"):
                return  # a recorder is running but not recording: hold, like an operator waiting
            target = teleop.next_target(q, treat, self.bowl_xy)
        self._publish(target[:7], float(target[7]), now)

    def _publish(self, arm: np.ndarray, finger: float, stamp: float) -> None:
        action, t = self.spec.action, self.transport
        msg = t.new_message(action.command.type)
        topic = action.command.topic
        if action.command.type.endswith("JointTrajectory"):
            reach = action.time_from_start or 1.0 / self.rate_hz
            messages.fill_joint_trajectory(msg, self.arm_joints, arm, stamp, reach, topic=topic)
        elif action.command.type.endswith("Float64MultiArray"):
            messages.fill_float64_multi_array(msg, arm, topic=topic)
        else:
            messages.fill_joint_state(msg, self.arm_joints, arm, stamp_s=stamp, topic=topic)
        self._command_pub.publish(msg)
        assert action.gripper is not None
        g = t.new_message(action.gripper.type)
        if action.gripper.type.endswith("Float64MultiArray"):
            messages.fill_float64_multi_array(g, [finger], topic=action.gripper.topic)
        else:
            messages.fill_joint_state(g, [action.gripper.joint], [finger], stamp_s=stamp, topic=action.gripper.topic)
        self._gripper_pub.publish(g)
        self.commands_sent += 1



# -- entry points ---------------------------------------------------------------------------------

def main(args: list[str] | None = None) -> None:
    """``ros2 run hpt_ros scripted_teleop`` (rclpy transport)."""
    run_node(ScriptedTeleopNode, "rclpy", "scripted_teleop", args=args)


def cli(argv: list[str], prog: str = "hpt-ros teleop") -> int:
    """``hpt-ros teleop`` (dds transport)."""
    parser = argparse.ArgumentParser(
        prog=prog, description="Scripted teleoperator for the fake robot over DDS: follows the episode's scene, "
                               "publishes the spec's commands.")
    parser.add_argument("--robot", default="franka_fr3", help="robot spec YAML or shipped name")
    parser.add_argument("--task", default="feed_dog", help="task YAML or name (as given to the fake robot)")
    parser.add_argument("--seed", type=int, default=0, help="scene seed (as given to the fake robot)")
    parser.add_argument("--episode", type=int, default=0, help="first episode (as given to the fake robot)")
    parser.add_argument("--noise", type=float, default=0.01, help="noise on arm targets [rad] (default 0.01)")
    parser.add_argument("--perturbation", type=float, default=0.03,
                        help="occasional larger perturbations of the arm targets [rad] (default 0.03)")
    parser.add_argument("--approach-error", type=float, default=0.0,
                        help="how far off the treat it lines up before descending, corrected on the way down [m] "
                             "(default 0: on the treat)")
    parser.add_argument("--missed-grasp", type=float, default=0.0,
                        help="share of episodes whose first grasp misses the treat and is recovered (default 0)")
    parser.add_argument("--rate-hz", type=float, default=0.0, help="command rate (default: the spec's)")
    parser.add_argument("--no-follow-recorder", action="store_true",
                        help="move even while a teleop recorder is running but not recording")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    args = parser.parse_args(argv)
    parameters = {"robot_config": args.robot, "task": args.task, "seed": args.seed, "episode": args.episode,
                  "noise": args.noise, "perturbation": args.perturbation, "approach_error": args.approach_error,
                  "missed_grasp": args.missed_grasp, "rate_hz": args.rate_hz, "follow_recorder": not args.no_follow_recorder}
    return run_node(ScriptedTeleopNode, "dds", "scripted_teleop", parameters=parameters, duration_s=args.duration)


if __name__ == "__main__":  # pragma: no cover
    import logging

    logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    sys.exit(cli(sys.argv[1:], prog="python -m hpt_ros.nodes.scripted_teleop"))
