"""``hpt-ros demo``: the closed loop on the built-in default, no robot and no ROS 2 install.

Starts the fake Franka FR3 and the policy node as two processes talking DDS on loopback,
enables motion, later disables it (a safety event), and prints what a person wants to
know: the control rate reached, the inference latency, the safety events and how far
the arm moved.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["cli", "DEFAULT_MODEL_NAME", "default_model_path"]

DEFAULT_MODEL_NAME = "franka_fr3_feed_dog"


def default_model_path() -> Path | None:
    """The shipped default checkpoint (models/franka_fr3_feed_dog), if present."""
    from hpt_ros.resources import models_dir

    try:
        path = models_dir() / DEFAULT_MODEL_NAME
    except FileNotFoundError:
        return None
    return path if (path / "hpt.yaml").is_file() else None


def _random_model(spec, folder: Path, size: str) -> Path:
    """A random-initialised checkpoint, only when no trained default model is shipped."""
    import logging

    from hpt_ros.engine.factory import build_policy_for_spec
    from hpt_ros.model import save_checkpoint

    logging.getLogger("hpt_ros.demo").warning(
        "no trained default model in models/%s: the demo runs a RANDOMLY INITIALISED policy", DEFAULT_MODEL_NAME)
    policy = build_policy_for_spec(spec, size=size, random_vision=True)
    save_checkpoint(folder, policy, {"robot": spec.name, "spec_hash": spec.spec_hash, "note": "random init (demo)"})
    return folder


def _spawn(args: list[str], log_prefix: str, env: dict[str, str]) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, "-m", "hpt_ros.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, env=env, bufsize=1)

    def forward() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            sys.stdout.write(f"  [{log_prefix}] {line}")
            sys.stdout.flush()

    threading.Thread(target=forward, daemon=True).start()
    return proc


def cli(argv: list[str], prog: str = "hpt-ros demo") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--robot", default="franka_fr3")
    parser.add_argument("--model", default="", help="checkpoint dir or .onnx (default: the shipped model)")
    parser.add_argument("--engine", default="", choices=["", "torch", "onnxruntime"])
    parser.add_argument("--precision", default="", choices=["", "fp32", "bf16", "fp16"])
    parser.add_argument("--duration", type=float, default=12.0, help="seconds of closed loop (default 12)")
    parser.add_argument("--episode", type=int, default=0, help="scene episode (bowl position)")
    args = parser.parse_args(argv)

    import tempfile

    from hpt_ros.ros import make_transport, messages
    from hpt_ros.ros.transport import QOS_DEFAULT
    from hpt_ros.sim.kinematics import tcp_position
    from hpt_ros.nodes.fake_robot import load_task
    from hpt_ros.sim.scene import FeedDogScene
    from hpt_ros.spec import load_spec

    spec = load_spec(args.robot)
    print(spec.summary())
    tmp = tempfile.TemporaryDirectory(prefix="hpt_ros_demo_")
    model = args.model or (str(default_model_path() or "") if default_model_path() else "")
    if not model:
        model = str(_random_model(spec, Path(tmp.name) / "random_model", "tiny"))
    print(f"model: {model}")

    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(80 + os.getpid() % 20))
    env.setdefault("PYTHONUNBUFFERED", "1")
    robot = _spawn(["fake-robot", "--robot", args.robot, "--episode", str(args.episode)], "fake_robot", env)
    policy = _spawn(["policy", "--robot", args.robot, "--model", model,
                     *(["--engine", args.engine] if args.engine else []),
                     *(["--precision", args.precision] if args.precision else [])], "policy_node", env)
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    monitor = make_transport("dds", "demo_monitor")
    command_times: list[float] = []
    joints: dict[str, Any] = {}
    diagnostics: dict[str, str] = {}
    state_joints = list(spec.action.arm_joints)

    def on_command(_msg: Any) -> None:
        command_times.append(time.monotonic())

    def on_joint_state(msg: Any) -> None:
        try:
            joints["q"] = messages.joint_state_to_array(msg, state_joints, topic=spec.state_sensors[0].topic)
        except messages.MessageConversionError:
            pass

    def on_diagnostics(msg: Any) -> None:
        for status in msg.status:
            if status.name.endswith("policy"):
                diagnostics.clear()
                diagnostics.update({kv.key: kv.value for kv in status.values})

    monitor.create_subscription(spec.action.command.topic, spec.action.command.type, on_command, QOS_DEFAULT)
    monitor.create_subscription(spec.state_sensors[0].topic, "sensor_msgs/msg/JointState", on_joint_state)
    monitor.create_subscription("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", on_diagnostics)
    enable_pub = monitor.create_publisher(spec.safety.enable_topic, "std_msgs/msg/Bool")

    def enable(value: bool) -> None:
        msg = monitor.new_message("std_msgs/msg/Bool")
        messages.fill_bool(msg, value)
        enable_pub.publish(msg)

    code = 0
    try:
        # wait for the policy node to be up (its first diagnostics), at most 120 s (model load)
        deadline = time.monotonic() + 120
        monitor.spin(duration_s=120, until=lambda: bool(diagnostics) or policy.poll() is not None
                     or time.monotonic() > deadline)
        if policy.poll() is not None or not diagnostics:
            print("error: the policy node did not come up", file=sys.stderr)
            return 1
        q_start = joints.get("q")
        print(f"\nenabling motion for {args.duration:g} s ...")
        enable(True)
        t_enable = time.monotonic()
        monitor.spin(duration_s=args.duration)
        enabled_window = [t for t in command_times if t >= t_enable]
        snapshot = dict(diagnostics)
        q_end = joints.get("q")
        print("disabling motion ...")
        enable(False)
        monitor.spin(duration_s=2.0)
        after = [t for t in command_times if t > time.monotonic() - 1.0]
        rate = (len(enabled_window) - 1) / (enabled_window[-1] - enabled_window[0]) if len(enabled_window) > 2 else 0.0
        scene = FeedDogScene.from_task(load_task("feed_dog"), 0, args.episode)  # as the fake robot draws it
        print("\n=== hpt_ros demo summary ===")
        print(f"control rate: {rate:.2f} Hz commanded (target {spec.rate_hz:g} Hz); "
              f"node reports {snapshot.get('rate_hz', 'n/a')} Hz")
        print(f"inference latency: p50 {snapshot.get('inference_p50_ms', 'n/a')} ms, "
              f"p99 {snapshot.get('inference_p99_ms', 'n/a')} ms")
        print(f"commands while enabled: {len(enabled_window)}; in the last second after disabling: {len(after)}")
        print(f"safety: held ticks {diagnostics.get('held_ticks', 'n/a')}, hold events "
              f"{diagnostics.get('hold_events', 'n/a')}, state now '{diagnostics.get('safety_state', 'n/a')}'")
        if q_start is not None and q_end is not None:
            moved = float(np.abs(q_end - q_start).max())
            d0 = np.linalg.norm(tcp_position(q_start)[:2] - scene.target_position[:2])
            d1 = np.linalg.norm(tcp_position(q_end)[:2] - scene.target_position[:2])
            print(f"arm: largest joint motion {moved:.3f} rad; gripper-to-bowl distance {d0:.3f} m -> {d1:.3f} m")
        if not enabled_window:
            print("error: no command arrived while enabled", file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        code = 130
    finally:
        monitor.shutdown()
        for proc in (policy, robot):
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
        for proc in (policy, robot):
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        tmp.cleanup()
    return code
