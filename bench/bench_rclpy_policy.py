"""Benchmark: the policy node under real rclpy, fed two 640x480 cameras at 30 Hz, against the spec's rate.

    .venv-jazzy/bin/python bench/bench_rclpy_policy.py [--seconds 10] [--model PATH] [--transport rclpy|dds]

Runs in a ROS 2 wheel venv (``scripts/install_ros_wheels.sh jazzy``). The policy node
(``policy_node`` for rclpy, ``hpt-ros policy`` for dds; the shipped model unless
``--model``) runs as its own process; this process publishes both cameras and the joint
states (200 Hz) over the same transport, enables motion and counts commands. Printed: the
command rate as a fraction of the spec's, the camera frames that reached the node (its
``age_*`` diagnostics), and the hold ticks and hold events it reported.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import threading
import time
from typing import Any

from _processes import stop_children

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a file: make the package importable
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

Q_START = [0.0, -0.3, 0.0, -2.0, 0.0, 1.9, 0.8, 0.02]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--model", default=str(REPO / "models" / "franka_fr3_feed_dog"), help="checkpoint")
    parser.add_argument("--transport", choices=("rclpy", "dds"), default="rclpy")
    parser.add_argument("--robot", default="franka_fr3", help="spec path or shipped name")
    parser.add_argument("--sensors", choices=("rclpy", "dds"), default="dds",
                        help="transport of this process's publishers (default dds: the same load for either node)")
    parser.add_argument("--camera-rate-hz", type=float, default=30.0)
    parser.add_argument("--joint-rate-hz", type=float, default=200.0)
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(200 + os.getpid() % 32))

    from hpt_ros.msgs.messages import fill_joint_state, numpy_to_image
    from hpt_ros.ros import make_transport
    from hpt_ros.ros.dds_config import ensure_dds_config
    from hpt_ros.ros.transport import QOS_DEFAULT, QOS_SENSOR_DATA
    from hpt_ros.spec import load_spec

    ensure_dds_config()
    spec = load_spec(args.robot)
    bindir = pathlib.Path(sys.executable).parent
    if args.transport == "rclpy":
        command = [str(bindir / "policy_node"), "--ros-args", "-p", f"robot_config:={args.robot}"] + (
            ["-p", f"model:={args.model}"] if args.model else [])
    else:
        command = [sys.executable, "-m", "hpt_ros.cli", "policy", "--robot", args.robot] + (
            ["--model", args.model] if args.model else [])
    log_path = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_rclpy_policy_{os.getpid()}.log"
    log = open(log_path, "w")
    node_proc = subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT,
                                 env=dict(os.environ, PYTHONUNBUFFERED="1"))

    bench = make_transport(args.sensors, "bench_sensors")
    cameras = [bench.create_publisher(s.topic, "sensor_msgs/msg/Image", QOS_SENSOR_DATA) for s in spec.image_sensors]
    joints = bench.create_publisher(spec.state_sensors[0].topic, "sensor_msgs/msg/JointState", QOS_DEFAULT)
    enable = bench.create_publisher(spec.safety.enable_topic, "std_msgs/msg/Bool", QOS_DEFAULT)
    names = list(spec.state_sensors[0].joints)
    frames = [np.random.default_rng(i).integers(0, 256, (480, 640, 3), dtype=np.uint8) for i in range(2)]
    lock = threading.Lock()
    commands: list[float] = []
    diagnostics: dict[str, str] = {}
    sent = {"frames": 0}

    def on_command(msg: Any) -> None:
        with lock:
            commands.append(time.monotonic())

    def on_diagnostics(msg: Any) -> None:
        for status in msg.status:
            for kv in status.values:
                diagnostics[kv.key] = kv.value

    def publish_cameras() -> None:
        now = bench.now()
        for pub, frame in zip(cameras, frames):
            pub.publish(numpy_to_image(bench.new_message("sensor_msgs/msg/Image"), frame, "rgb8", stamp_s=now))
            sent["frames"] += 1

    def publish_joints() -> None:
        msg = bench.new_message("sensor_msgs/msg/JointState")
        fill_joint_state(msg, names, Q_START, stamp_s=bench.now())
        joints.publish(msg)

    def publish_enable() -> None:
        msg = bench.new_message("std_msgs/msg/Bool")
        msg.data = True
        enable.publish(msg)

    bench.create_subscription(spec.action.command.topic, spec.action.command.type, on_command, QOS_DEFAULT)
    bench.create_subscription("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", on_diagnostics, QOS_DEFAULT)
    bench.create_timer(1.0 / args.camera_rate_hz, publish_cameras, group="cameras")
    bench.create_timer(1.0 / args.joint_rate_hz, publish_joints, group="joints")
    bench.create_timer(0.5, publish_enable, group="enable")
    try:
        deadline = time.monotonic() + 180.0
        bench.spin(until=lambda: len(commands) >= 10 or time.monotonic() > deadline or node_proc.poll() is not None)
        if len(commands) < 10:
            raise SystemExit(f"the policy node did not command (log: {log_path}):\n{log_path.read_text()[-3000:]}")
        bench.spin(duration_s=2.0)  # settle
        start_commands, start_holds = len(commands), int(diagnostics.get("held_ticks", "0"))
        start_events, start_frames = int(diagnostics.get("hold_events", "0")), sent["frames"]
        t0 = time.monotonic()
        bench.spin(duration_s=args.seconds)
        elapsed = time.monotonic() - t0
        with lock:
            window = [t for t in commands[start_commands:]]
        holds = int(diagnostics.get("held_ticks", "0")) - start_holds
        events = int(diagnostics.get("hold_events", "0")) - start_events
        frames_sent = sent["frames"] - start_frames
    finally:
        stop_children([node_proc])
        bench.shutdown()
        log.close()
    rate = len(window) / elapsed
    intervals = np.diff(window) if len(window) > 1 else np.array([np.nan])
    print(f"policy node on {args.transport} (sensors from {args.sensors}), spec {spec.name} at {spec.rate_hz:g} Hz, 2 x 640x480 rgb8 at "
          f"{args.camera_rate_hz:g} Hz ({frames_sent / elapsed:.1f} frames/s sent), joint states at "
          f"{args.joint_rate_hz:g} Hz, {args.seconds:g} s, ROS_DOMAIN_ID {os.environ['ROS_DOMAIN_ID']}")
    print(f"  commands: {rate:.2f} Hz = {rate / spec.rate_hz:.2f} of the spec's rate; median interval "
          f"{np.median(intervals) * 1e3:.1f} ms, p99 {np.percentile(intervals, 99) * 1e3:.1f} ms")
    print(f"  node diagnostics: rate_hz {diagnostics.get('rate_hz')}, inference p50 "
          f"{diagnostics.get('inference_p50_ms')} ms, held ticks {holds}, hold events {events}, "
          f"safety_state {diagnostics.get('safety_state')}")
    print(f"  (node log: {log_path})")


if __name__ == "__main__":
    main()
