"""Benchmark: CPU a subscriber process spends on a policy node's inputs, per transport and rclpy executor.

    .venv-jazzy/bin/python bench/bench_rclpy_subscriber_cpu.py [--seconds 5] [--joint-rate-hz 200]

Runs in a ROS 2 wheel venv (``scripts/install_ros_wheels.sh jazzy``). A publisher process
(the ``dds`` transport) sends joint states at ``--joint-rate-hz`` and two 640x480 rgb8
cameras at 30 Hz; a subscriber process receives them with empty callbacks, one variant
at a time: the ``dds`` transport, the package's ``rclpy`` transport, and plain rclpy nodes
on a ``SingleThreadedExecutor``, a ``MultiThreadedExecutor`` (2 threads) and the
experimental ``EventsExecutor``. Printed per variant: messages received per second and
the subscriber's CPU time as a share of one core (on two cores, what it takes from
inference).
"""

from __future__ import annotations

import argparse
import os
import pathlib
import resource
import subprocess
import sys
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a file: make the package importable
    sys.path.insert(0, str(REPO))

VARIANTS = ("dds", "rclpy", "single", "multi", "events")
CAMERAS = ("/bench/cam0", "/bench/cam1")


def run_publisher(args: argparse.Namespace) -> None:
    import numpy as np

    from hpt_ros.msgs.messages import fill_joint_state, numpy_to_image
    from hpt_ros.ros import make_transport
    from hpt_ros.ros.transport import QOS_SENSOR_DATA

    node = make_transport("dds", "bench_publisher")
    joints = node.create_publisher("/bench/joint_states", "sensor_msgs/msg/JointState")
    cameras = [node.create_publisher(c, "sensor_msgs/msg/Image", QOS_SENSOR_DATA) for c in CAMERAS]
    state = fill_joint_state(node.new_message("sensor_msgs/msg/JointState"), [f"j{i}" for i in range(8)], [0.0] * 8)
    image = numpy_to_image(node.new_message("sensor_msgs/msg/Image"), np.zeros((480, 640, 3), np.uint8), "rgb8")
    node.create_timer(1.0 / args.joint_rate_hz, lambda: joints.publish(state), group="joints")
    node.create_timer(1.0 / 30.0, lambda: [pub.publish(image) for pub in cameras], group="cameras")
    import threading

    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    node.spin(until=done.is_set)
    node.shutdown()


def run_subscriber(args: argparse.Namespace) -> None:
    counts = {"joints": 0, "images": 0}

    def counter(key: str):
        def callback(msg: Any) -> None:
            counts[key] += 1
        return callback

    if args.variant in ("dds", "rclpy"):
        from hpt_ros.ros import make_transport
        from hpt_ros.ros.transport import QOS_SENSOR_DATA

        node = make_transport(args.variant, "bench_subscriber")
        node.create_subscription("/bench/joint_states", "sensor_msgs/msg/JointState", counter("joints"))
        for camera in CAMERAS:
            node.create_subscription(camera, "sensor_msgs/msg/Image", counter("images"), QOS_SENSOR_DATA)
        spin = node.spin
    else:
        import rclpy
        from rclpy.executors import MultiThreadedExecutor, SingleThreadedExecutor
        from rclpy.qos import qos_profile_sensor_data
        from sensor_msgs.msg import Image, JointState

        from hpt_ros.ros.dds_config import ensure_dds_config

        ensure_dds_config()
        rclpy.init()
        node = rclpy.create_node("bench_subscriber")
        node.create_subscription(JointState, "/bench/joint_states", counter("joints"), 10)
        for camera in CAMERAS:
            node.create_subscription(Image, camera, counter("images"), qos_profile_sensor_data)
        if args.variant == "events":
            from rclpy.experimental import EventsExecutor

            executor = EventsExecutor()
        elif args.variant == "multi":
            executor = MultiThreadedExecutor(num_threads=2)
        else:
            executor = SingleThreadedExecutor()
        executor.add_node(node)

        def spin(duration_s: float) -> None:
            end = time.monotonic() + duration_s
            while time.monotonic() < end:
                executor.spin_once(timeout_sec=0.05)

    spin(duration_s=3.0)  # discovery and warm-up
    before, start, seen = resource.getrusage(resource.RUSAGE_SELF), time.monotonic(), dict(counts)
    spin(duration_s=args.seconds)
    after, elapsed = resource.getrusage(resource.RUSAGE_SELF), time.monotonic() - start
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    print(f"{args.variant:7s} joint states {(counts['joints'] - seen['joints']) / elapsed:6.1f}/s, "
          f"images {(counts['images'] - seen['images']) / elapsed:5.1f}/s: "
          f"{cpu / elapsed * 100:5.1f}% of a core", flush=True)
    os._exit(0)  # the rclpy variants' executors are not wound down: only the figure matters


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--joint-rate-hz", type=float, default=200.0)
    parser.add_argument("--variants", default=",".join(VARIANTS))
    parser.add_argument("--role", choices=("main", "publisher", "subscriber"), default="main", help=argparse.SUPPRESS)
    parser.add_argument("--variant", choices=VARIANTS, default="rclpy", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(200 + os.getpid() % 32))
    if args.role == "publisher":
        run_publisher(args)
        return
    if args.role == "subscriber":
        run_subscriber(args)
        return
    me = [sys.executable, str(pathlib.Path(__file__).resolve()), "--seconds", str(args.seconds),
          "--joint-rate-hz", str(args.joint_rate_hz)]
    publisher = subprocess.Popen(me + ["--role", "publisher"], stdin=subprocess.PIPE, cwd=REPO)
    print(f"joint states at {args.joint_rate_hz:g} Hz + 2 x 640x480 rgb8 at 30 Hz from a dds publisher, "
          f"{args.seconds:g} s per variant, ROS_DOMAIN_ID {os.environ['ROS_DOMAIN_ID']}, loopback", flush=True)
    try:
        for variant in args.variants.split(","):
            out = subprocess.run(me + ["--role", "subscriber", "--variant", variant], capture_output=True,
                                 text=True, cwd=REPO, timeout=120)
            lines = [line for line in out.stdout.splitlines() if line.startswith(variant)]
            print(lines[-1] if lines else f"{variant}: failed\n{out.stderr[-2000:]}", flush=True)
    finally:
        publisher.stdin.close()
        publisher.wait(timeout=20)


if __name__ == "__main__":
    main()
