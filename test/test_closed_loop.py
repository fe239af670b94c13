"""The closed loop over real DDS between processes: fake FR3 arm, fake cameras, policy node.

A tiny random-initialised policy (its commands are arbitrary, which exercises the
safety filter) runs as its own process. The test process watches the commands, the
joint states and the diagnostics, kills and restarts the camera process, and toggles
the enable topic:

* commands come at the spec's rate, within a generous factor (their stamps; speed itself
  is the benchmarks' job), and the arm moves;
* killing the cameras makes the node hold: no command is stamped later than one
  ``max_age`` (plus a few ticks of slack) after the last frame, and restarting them
  resumes motion;
* the enable topic stops and starts motion;
* no command ever exceeds the joint limits or the maximum step per tick.
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

from conftest import ROOT


RATE_HZ = 10.0


class Watcher:
    """Test-side DDS participant: records commands, joint states and diagnostics."""

    def __init__(self, spec):
        from hpt_ros.msgs import messages
        from hpt_ros.ros import make_transport
        from hpt_ros.ros.transport import QOS_DEFAULT, QOS_SENSOR_DATA

        self.spec = spec
        self.t = make_transport("dds", "closed_loop_watcher")
        self.lock = threading.Lock()
        self.commands: list[tuple[float, np.ndarray]] = []
        self.command_stamps: list[float] = []
        self.last_frame_stamp: float | None = None
        self.joints: list[tuple[float, np.ndarray]] = []
        self.diagnostics: dict[str, str] = {}
        arm = list(spec.action.arm_joints)

        def on_command(msg):
            positions = np.array(msg.points[-1].positions, dtype=np.float64)
            assert list(msg.joint_names) == arm
            with self.lock:
                self.commands.append((time.monotonic(), positions))
                self.command_stamps.append(messages.header_seconds(msg))

        def on_frame(msg):
            with self.lock:
                self.last_frame_stamp = messages.header_seconds(msg)

        def on_joint_state(msg):
            q = messages.joint_state_to_array(msg, arm, topic="/joint_states")
            with self.lock:
                self.joints.append((time.monotonic(), q))

        def on_diagnostics(msg):
            for status in msg.status:
                if status.name.endswith("policy"):
                    with self.lock:
                        self.diagnostics = {kv.key: kv.value for kv in status.values}

        self.t.create_subscription(spec.action.command.topic, spec.action.command.type, on_command, QOS_DEFAULT)
        self.t.create_subscription("/joint_states", "sensor_msgs/msg/JointState", on_joint_state, QOS_DEFAULT)
        for sensor in spec.image_sensors:
            self.t.create_subscription(sensor.topic, "sensor_msgs/msg/Image", on_frame, QOS_SENSOR_DATA)
        self.t.create_subscription("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", on_diagnostics)
        self.enable_pub = self.t.create_publisher(spec.safety.enable_topic, "std_msgs/msg/Bool", QOS_DEFAULT)
        self.thread = threading.Thread(target=self.t.spin, daemon=True)
        self.thread.start()

    def enable(self, value: bool) -> None:
        from hpt_ros.msgs import messages

        msg = self.t.new_message("std_msgs/msg/Bool")
        messages.fill_bool(msg, value)
        self.enable_pub.publish(msg)

    def commands_since(self, t0: float) -> list[tuple[float, np.ndarray]]:
        with self.lock:
            return [c for c in self.commands if c[0] >= t0]

    def wait_for(self, predicate, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if predicate():
                return
            time.sleep(0.05)
        pytest.fail(f"timed out after {timeout} s waiting for {what}; diagnostics: {self.diagnostics}")

    def close(self) -> None:
        self.t.shutdown()
        self.thread.join(timeout=5)


def _spawn(args, env, log):
    return subprocess.Popen([sys.executable, "-m", "hpt_ros.cli", *args], cwd=ROOT, env=env,
                            stdout=log, stderr=subprocess.STDOUT)


def _stop(proc, sig=signal.SIGINT):
    if proc is not None and proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def test_closed_loop_over_dds(tmp_path, monkeypatch, franka_spec_path):
    from hpt_ros.engine.factory import build_policy_for_spec
    from hpt_ros.model import save_checkpoint
    from hpt_ros.spec import load_spec

    spec = load_spec(franka_spec_path)
    model = tmp_path / "tiny_model"
    save_checkpoint(model, build_policy_for_spec(spec, "tiny", random_vision=True), {"robot": spec.name})

    domain = str(100 + os.getpid() % 100)
    monkeypatch.setenv("ROS_DOMAIN_ID", domain)
    env = dict(os.environ, ROS_DOMAIN_ID=domain, PYTHONPATH=str(ROOT))
    log = open(tmp_path / "processes.log", "w")
    camera_args = ["fake-robot", "--components", "cameras", "--width", "160", "--height", "120"]
    procs: dict[str, subprocess.Popen] = {}
    watcher = Watcher(spec)
    try:
        procs["arm"] = _spawn(["fake-robot", "--components", "arm", "--joint-state-rate-hz", "200"], env, log)
        procs["cameras"] = _spawn(camera_args, env, log)
        procs["policy"] = _spawn(["policy", "--model", str(model), "--rate-hz", str(RATE_HZ)], env, log)
        # the node comes up disabled (require_enable): no command until enabled
        watcher.wait_for(lambda: watcher.diagnostics.get("safety_state") == "disabled", 120, "the node to be ready")
        assert watcher.commands_since(0) == []

        # -- enabled: commands at the spec's rate, the arm moves ------------------------
        watcher.enable(True)
        t_enable = time.monotonic()
        watcher.wait_for(lambda: len(watcher.commands_since(t_enable)) >= 40, 60, "40 commands")
        with watcher.lock:
            stamps = np.array(watcher.command_stamps)
        # the spec's rate and not another: a generous bound (a loaded machine may skip a tick now and then)
        periods = np.diff(stamps) * RATE_HZ
        assert (periods > 0).all() and 0.5 <= np.median(periods) <= 2.0, periods
        with watcher.lock:
            q_first = watcher.joints[0][1]
            q_last = watcher.joints[-1][1]
        assert np.abs(q_last - q_first).max() > 0.01, "the arm did not move"

        # -- cameras killed: hold within one max_age (+ one tick) --------------------------
        max_age = max(s.max_age for s in spec.image_sensors)
        _stop(procs.pop("cameras"), signal.SIGKILL)
        watcher.wait_for(lambda: watcher.diagnostics.get("safety_state", "").startswith("stale"), 10,
                         "a stale-camera hold")
        time.sleep(0.5)
        with watcher.lock:
            last_frame, last_command = watcher.last_frame_stamp, watcher.command_stamps[-1]
        # stamps, not arrival times: the node stops once the newest frame is older than max_age
        # (slack: the frame's delivery and the tick grid)
        assert last_command - last_frame <= max_age + 3.0 / RATE_HZ, (last_command, last_frame)
        t_quiet = time.monotonic()
        time.sleep(1.0)
        assert watcher.commands_since(t_quiet) == [], "commands while the cameras are gone"

        # -- cameras back: motion resumes by itself ----------------------------------------
        procs["cameras"] = _spawn(camera_args, env, log)
        t_restart = time.monotonic()
        watcher.wait_for(lambda: len(watcher.commands_since(t_restart)) >= 5, 60, "motion to resume")

        # -- enable topic stops and starts motion -------------------------------------------
        watcher.enable(False)
        time.sleep(0.5)
        t_disabled = time.monotonic()
        time.sleep(1.0)
        assert watcher.commands_since(t_disabled) == [], "commands while disabled"
        watcher.enable(True)
        t_reenable = time.monotonic()
        watcher.wait_for(lambda: len(watcher.commands_since(t_reenable)) >= 5, 30, "motion after re-enable")
    finally:
        for name in ("policy", "cameras", "arm"):
            _stop(procs.get(name))
        watcher.close()
        log.close()

    # -- no command ever exceeded the limits or the maximum step ----------------------------
    arm = spec.action.arm_joints
    lower, upper, velocity = spec.joint_limits_arrays(arm)
    max_step = spec.safety.max_velocity_fraction * velocity / RATE_HZ
    commands = watcher.commands
    assert len(commands) >= 50
    for _, q in commands:
        assert np.all(q >= lower - 1e-9) and np.all(q <= upper + 1e-9), q
    steps_checked = 0
    for (t0, a), (t1, b) in zip(commands, commands[1:]):
        if t1 - t0 < 1.5 / RATE_HZ:  # consecutive ticks (no hold between them)
            assert np.all(np.abs(b - a) <= max_step + 1e-6), (b - a, max_step)
            steps_checked += 1
    assert steps_checked >= 30
    print((tmp_path / "processes.log").read_text()[-3000:])
