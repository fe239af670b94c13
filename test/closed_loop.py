"""The closed loop between processes, on any pair of stacks: fake FR3 arm, fake cameras, policy node.

Used by ``test_closed_loop.py`` (everything on the ``dds`` transport) and by
``rclpy_real/test_closed_loop_rclpy.py`` (real rclpy, and one stack on each side). The robot
side (arm and camera processes) runs on ``robot_stack``, the policy node on ``policy_stack``,
the test's watcher on ``watcher_stack``; a stack is ``"dds"`` (``hpt-ros fake-robot`` /
``hpt-ros policy``) or ``"rclpy"`` (the ``fake_robot`` / ``policy_node`` console scripts,
started as ``ros2 run`` starts them). A tiny random-initialised policy (its commands are
arbitrary, which exercises the safety filter) runs as its own process:

* the node comes up disabled and commands once the enable topic says so, and the arm moves;
* killing the camera process makes the node hold and say why (``stale <camera>``): no
  command is stamped later than one ``max_age`` (plus a few ticks) after the last frame;
  restarting the cameras resumes motion by itself;
* the enable topic stops and starts motion;
* no command ever exceeds the joint limits or the maximum step per tick.

Waits are bounded and name what they waited for; no test here measures speed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pytest

from conftest import ROOT

STACKS = ("dds", "rclpy")


class Watcher:
    """Test-side participant: records commands, joint states, camera stamps and the policy's diagnostics."""

    def __init__(self, spec, kind: str):
        from hpt_ros.msgs import messages
        from hpt_ros.ros import make_transport
        from hpt_ros.ros.transport import QOS_DEFAULT, QOS_SENSOR_DATA

        self.spec = spec
        self.t = make_transport(kind, "closed_loop_watcher")
        self.lock = threading.Lock()
        self.commands: list[tuple[float, float, np.ndarray]] = []  # (arrival, stamp, positions)
        self.last_frame_stamp: float | None = None
        self.joints: list[tuple[float, np.ndarray]] = []
        self.diagnostics: dict[str, str] = {}
        arm = list(spec.action.arm_joints)

        def on_command(msg):
            positions = np.array(msg.points[-1].positions, dtype=np.float64)
            assert list(msg.joint_names) == arm
            with self.lock:
                self.commands.append((time.monotonic(), messages.header_seconds(msg), positions))

        def on_frame(msg):
            with self.lock:
                self.last_frame_stamp = messages.header_seconds(msg)

        def on_joint_state(msg):
            q = messages.joint_state_to_array(msg, arm, topic="/joint_states")
            with self.lock:
                self.joints.append((time.monotonic(), q))

        def on_diagnostics(msg):
            values = messages.diagnostic_values(msg, "policy")
            if values is not None:
                with self.lock:
                    self.diagnostics = values

        self.t.create_subscription(spec.action.command.topic, spec.action.command.type, on_command, QOS_DEFAULT)
        self.t.create_subscription("/joint_states", "sensor_msgs/msg/JointState", on_joint_state, QOS_DEFAULT)
        for sensor in spec.image_sensors:
            self.t.create_subscription(sensor.topic, "sensor_msgs/msg/Image", on_frame, QOS_SENSOR_DATA)
        self.t.create_subscription("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", on_diagnostics)
        self.enable_pub = self.t.create_publisher(spec.safety.enable_topic, "std_msgs/msg/Bool", QOS_DEFAULT)
        self._stop = threading.Event()
        self.thread = threading.Thread(target=self.t.spin, kwargs={"until": self._stop.is_set}, daemon=True)
        self.thread.start()

    def enable(self, value: bool) -> None:
        from hpt_ros.msgs import messages

        msg = self.t.new_message("std_msgs/msg/Bool")
        messages.fill_bool(msg, value)
        self.enable_pub.publish(msg)

    def commands_since(self, t0: float) -> list[tuple[float, float, np.ndarray]]:
        with self.lock:
            return [c for c in self.commands if c[0] >= t0]

    def safety_state(self) -> str:
        with self.lock:
            return self.diagnostics.get("safety_state", "")

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str,
                 repeat: Callable[[], None] | None = None, alive: dict[str, subprocess.Popen] | None = None) -> None:
        """Wait up to ``timeout`` s for ``predicate``; ``repeat`` is called every half second meanwhile
        (an enable message sent before the node's reader matched ours is not delivered); a
        process of ``alive`` that exits fails the wait at once."""
        deadline = time.monotonic() + timeout
        next_repeat = 0.0
        while time.monotonic() < deadline:
            if predicate():
                return
            for name, proc in (alive or {}).items():
                if proc.poll() is not None:
                    pytest.fail(f"the {name} process exited (rc {proc.returncode}) while waiting for {what}")
            if repeat is not None and time.monotonic() >= next_repeat:
                repeat()
                next_repeat = time.monotonic() + 0.5
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout} s waiting for {what}; diagnostics: {self.diagnostics}")

    def close(self) -> None:
        self._stop.set()
        self.thread.join(timeout=10)
        self.t.shutdown()


@dataclass
class ClosedLoop:
    """What the run saw: every command, and the command stamps of the first enabled stretch."""

    commands: list[tuple[float, float, np.ndarray]] = field(default_factory=list)
    enabled_stamps: np.ndarray = field(default_factory=lambda: np.zeros(0))


def robot_command(stack: str, component: str, width: int, height: int) -> list[str]:
    """The command line of one fake-robot component (``arm`` or ``cameras``) on ``stack``."""
    if stack == "dds":
        return [sys.executable, "-m", "hpt_ros.cli", "fake-robot", "--components", component, "--width", str(width),
                "--height", str(height), "--joint-state-rate-hz", "200"]
    return [_console_script("fake_robot"), "--ros-args", "-r", f"__node:=fake_robot_{component}",
            "-p", f"components:={component}", "-p", f"width:={width}", "-p", f"height:={height}",
            "-p", "joint_state_rate_hz:=200.0"]


def policy_command(stack: str, model, rate_hz: float) -> list[str]:
    """The command line of the policy node on ``stack`` (disabled until the enable topic says otherwise)."""
    if stack == "dds":
        return [sys.executable, "-m", "hpt_ros.cli", "policy", "--model", str(model), "--rate-hz", str(rate_hz)]
    return [_console_script("policy_node"), "--ros-args", "-p", f"model:={model}", "-p", f"rate_hz:={float(rate_hz)}"]


def _console_script(name: str) -> str:
    path = os.path.join(os.path.dirname(sys.executable), name)
    if not os.access(path, os.X_OK):
        pytest.fail(f"console script {name} not beside {sys.executable}: install the package into this venv")
    return path


def _stop(proc: subprocess.Popen | None, sig: int = signal.SIGINT) -> None:
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def run_closed_loop(tmp_path, spec, model, *, robot_stack: str, policy_stack: str, watcher_stack: str,
                    rate_hz: float = 10.0, width: int = 160, height: int = 120) -> ClosedLoop:
    """Run the scenario of the module docstring; fails with the processes' log on a broken expectation."""
    for stack in (robot_stack, policy_stack, watcher_stack):
        assert stack in STACKS, stack
    env = dict(os.environ, PYTHONPATH=str(ROOT), PYTHONUNBUFFERED="1")
    log_path = tmp_path / "processes.log"
    log = open(log_path, "w")
    procs: dict[str, subprocess.Popen] = {}

    def spawn(name: str, command: list[str]) -> None:
        procs[name] = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)

    def wait(predicate: Callable[[], bool], timeout: float, what: str, repeat: Callable[[], None] | None = None):
        watcher.wait_for(predicate, timeout, what, repeat=repeat, alive=procs)

    cameras = robot_command(robot_stack, "cameras", width, height)
    camera_names = [s.name for s in spec.image_sensors]
    watcher = Watcher(spec, watcher_stack)
    result = ClosedLoop()
    try:
        spawn("arm", robot_command(robot_stack, "arm", width, height))
        spawn("cameras", cameras)
        spawn("policy", policy_command(policy_stack, model, rate_hz))
        # the node comes up disabled (require_enable): no command until enabled
        wait(lambda: watcher.safety_state() == "disabled", 180, "the policy node to be ready (disabled)")
        assert watcher.commands_since(0) == [], "commands before the enable topic said so"

        # -- enabled: commands, and the arm moves ----------------------------------------------
        t_enable = time.monotonic()
        wait(lambda: len(watcher.commands_since(t_enable)) >= 40, 90, "40 commands once enabled",
                         repeat=lambda: watcher.enable(True))
        result.enabled_stamps = np.array([stamp for _, stamp, _ in watcher.commands_since(t_enable)])
        with watcher.lock:
            assert watcher.joints, "no joint states from the arm process"
            q_first, q_last = watcher.joints[0][1], watcher.joints[-1][1]
        assert np.abs(q_last - q_first).max() > 0.01, "the arm did not move"

        # -- cameras killed: the node holds and names a camera ---------------------------------
        max_age = max(s.max_age for s in spec.image_sensors)
        _stop(procs.pop("cameras"), signal.SIGKILL)
        wait(lambda: watcher.safety_state() in {f"stale {c}" for c in camera_names}, 30,
                         f"a hold for stale cameras ({', '.join(camera_names)})")
        time.sleep(0.5)
        with watcher.lock:
            last_frame, last_command = watcher.last_frame_stamp, watcher.commands[-1][1]
        # stamps, not arrival times: the node stops once the newest frame is older than max_age
        # (slack: the frame's delivery and the tick grid)
        assert last_command - last_frame <= max_age + 3.0 / rate_hz, (last_command, last_frame)
        t_quiet = time.monotonic()
        time.sleep(1.0)
        assert watcher.commands_since(t_quiet) == [], f"commands while the cameras are gone ({watcher.diagnostics})"

        # -- cameras back: motion resumes by itself ----------------------------------------------
        spawn("cameras", cameras)
        t_restart = time.monotonic()
        wait(lambda: len(watcher.commands_since(t_restart)) >= 5, 90, "motion to resume after a restart")

        # -- the enable topic stops and starts motion ----------------------------------------------
        wait(lambda: watcher.safety_state() == "disabled", 30, "the node to report disabled",
                         repeat=lambda: watcher.enable(False))
        t_disabled = time.monotonic() + 0.2  # a command already on the wire may still arrive
        time.sleep(1.2)
        assert watcher.commands_since(t_disabled) == [], "commands while disabled"
        t_reenable = time.monotonic()
        wait(lambda: len(watcher.commands_since(t_reenable)) >= 5, 30, "motion after re-enabling",
                         repeat=lambda: watcher.enable(True))
    except BaseException:
        log.flush()
        print(log_path.read_text()[-6000:])
        raise
    finally:
        for name in ("policy", "cameras", "arm"):
            _stop(procs.get(name))
        watcher.close()
        log.close()
    result.commands = list(watcher.commands)
    check_limits_and_steps(spec, result.commands, rate_hz)
    return result


def check_limits_and_steps(spec, commands: list[tuple[float, float, np.ndarray]], rate_hz: float) -> None:
    """No command beyond the joint limits; between commands at most 3 ticks apart (by their stamps,
    so no long hold lies between them) no step beyond the maximum per tick times the ticks."""
    lower, upper, velocity = spec.joint_limits_arrays(spec.action.arm_joints)
    max_step = spec.safety.max_velocity_fraction * velocity / rate_hz
    assert len(commands) >= 50, f"only {len(commands)} commands"
    for _, stamp, q in commands:
        assert np.all(q >= lower - 1e-9) and np.all(q <= upper + 1e-9), (stamp, q)
    ordered = sorted(commands, key=lambda c: c[1])
    steps_checked = 0
    for (_, s0, a), (_, s1, b) in zip(ordered, ordered[1:]):
        ticks = (s1 - s0) * rate_hz
        if ticks < 3.5:  # a loaded executor skips ticks: each command still moves at most one step
            k = max(1, round(ticks))
            assert np.all(np.abs(b - a) <= k * max_step + 1e-6), (s0, s1, b - a, max_step)
            steps_checked += 1
    assert steps_checked >= 10, f"only {steps_checked} steps of at most 3 ticks to check"
