"""Benchmark: the closed loop (fake robot + policy node) on rclpy and on dds, side by side.

    .venv-jazzy/bin/python bench/bench_closed_loop_rates.py [--seconds 20] [--transports dds rclpy]

Runs in a ROS 2 wheel venv (``scripts/install_ros_wheels.sh jazzy``). For each transport in
turn, the simulated Franka (``fake_robot`` / ``hpt-ros fake-robot``: physics, joint states at
100 Hz and two 640x480 rgb8 cameras at 30 Hz, one process) and the policy node
(``policy_node`` / ``hpt-ros policy``: the shipped model, or ``--model``, at the spec's rate) run as their
own processes; this process enables motion and reads the node's diagnostics. Printed per
transport, and as ratios: the command rate against the spec's, the camera frames the
policy node took per second against the cameras' nominal rate, and the hold ticks and events.
"""

from __future__ import annotations

import argparse
import os
import pathlib
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

from _processes import stop_children

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a file: make the package importable
    sys.path.insert(0, str(REPO))

STARTUP_S = 240.0  # torch, the model and MuJoCo on a loaded two-core machine
SETTLE_S = 3.0


@dataclass
class Rates:
    transport: str
    command_hz: float
    camera_hz: dict[str, float]
    held_ticks: int
    hold_events: int
    inference_p50_ms: str


def commands_for(transport: str, args: argparse.Namespace) -> dict[str, list[str]]:
    """The fake robot's and the policy node's command lines on ``transport``."""
    if transport == "rclpy":
        bindir = pathlib.Path(sys.executable).parent
        robot = [str(bindir / "fake_robot"), "--ros-args", "-p", f"robot_config:={args.robot}",
                 "-p", "width:=640", "-p", "height:=480", "-p", f"camera_rate_hz:={args.camera_rate_hz}"]
        policy = [str(bindir / "policy_node"), "--ros-args", "-p", f"robot_config:={args.robot}",
                  "-p", f"model:={args.model}"]
    else:
        cli = [sys.executable, "-m", "hpt_ros.cli"]
        robot = [*cli, "fake-robot", "--robot", args.robot, "--width", "640", "--height", "480",
                 "--camera-rate-hz", str(args.camera_rate_hz)]
        policy = [*cli, "policy", "--robot", args.robot, "--model", args.model]
    return {"robot": robot, "policy": policy}


def measure(transport: str, args: argparse.Namespace, spec) -> Rates:
    from hpt_ros.msgs import messages
    from hpt_ros.msgs.messages import fill_bool
    from hpt_ros.ros import make_transport
    from hpt_ros.ros.transport import QOS_DEFAULT

    log_path = pathlib.Path(os.environ.get("TMPDIR", "/tmp")) / f"bench_closed_loop_{transport}_{os.getpid()}.log"
    log = open(log_path, "w")
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    procs = {name: subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
             for name, command in commands_for(transport, args).items()}
    bench = make_transport(transport, "bench_closed_loop")
    lock = threading.Lock()
    commands: list[float] = []
    diagnostics: list[tuple[float, dict[str, str]]] = []

    def on_command(msg) -> None:
        with lock:
            commands.append(time.monotonic())

    def on_diagnostics(msg) -> None:
        values = messages.diagnostic_values(msg, "policy")
        if values is not None:
            with lock:
                diagnostics.append((time.monotonic(), values))

    enable = bench.create_publisher(spec.safety.enable_topic, "std_msgs/msg/Bool", QOS_DEFAULT)

    def publish_enable() -> None:
        enable.publish(fill_bool(bench.new_message("std_msgs/msg/Bool"), True))

    bench.create_subscription(spec.action.command.topic, spec.action.command.type, on_command, QOS_DEFAULT)
    bench.create_subscription("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", on_diagnostics, QOS_DEFAULT)
    bench.create_timer(0.5, publish_enable, group="enable")
    try:
        deadline = time.monotonic() + STARTUP_S
        exited = lambda: any(p.poll() is not None for p in procs.values())  # noqa: E731
        bench.spin(until=lambda: len(commands) >= 10 or time.monotonic() > deadline or exited())
        if len(commands) < 10:
            raise SystemExit(f"{transport}: the policy node did not command (log {log_path}):\n"
                             f"{log_path.read_text()[-3000:]}")
        bench.spin(duration_s=SETTLE_S)
        if not diagnostics:
            raise SystemExit(f"{transport}: commands but no /diagnostics from the policy node (log {log_path})")
        with lock:
            n0, first = len(commands), diagnostics[-1]
        t0 = time.monotonic()
        bench.spin(duration_s=args.seconds)
        elapsed = time.monotonic() - t0
        with lock:
            n1, last = len(commands), diagnostics[-1]
    finally:
        stop_children(procs.values())
        bench.shutdown()
        log.close()
    (ta, a), (tb, b) = first, last
    span = max(tb - ta, 1e-9)  # the two reports' arrival times: the counts' window
    cameras = {s.name: (int(b[f"received_{s.name}"]) - int(a[f"received_{s.name}"])) / span
               for s in spec.image_sensors}
    return Rates(transport, (n1 - n0) / elapsed, cameras, int(b["held_ticks"]) - int(a["held_ticks"]),
                 int(b["hold_events"]) - int(a["hold_events"]), b.get("inference_p50_ms", "n/a"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=20.0, help="measured window per transport")
    parser.add_argument("--robot", default="franka_fr3", help="spec path or shipped name")
    parser.add_argument("--model", default=str(REPO / "models" / "franka_fr3_feed_dog"), help="checkpoint")
    parser.add_argument("--camera-rate-hz", type=float, default=30.0)
    parser.add_argument("--transports", nargs="+", choices=("dds", "rclpy"), default=["dds", "rclpy"])
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(200 + os.getpid() % 32))

    from hpt_ros.ros.dds_config import ensure_dds_config
    from hpt_ros.spec import load_spec

    ensure_dds_config()
    spec = load_spec(args.robot)
    results = [measure(kind, args, spec) for kind in args.transports]
    print(f"closed loop: fake robot (2 x 640x480 rgb8 at {args.camera_rate_hz:g} Hz, joint states 100 Hz) + policy "
          f"node (spec {spec.name} at {spec.rate_hz:g} Hz), {args.seconds:g} s each, os.cpu_count() "
          f"{os.cpu_count()}, load average {os.getloadavg()[0]:.2f}")
    header = f"  {'transport':<10}{'commands':>16}{'':>4}" + "".join(
        f"{s.name:>28}" for s in spec.image_sensors) + f"{'held ticks':>12}{'hold events':>13}{'inference p50':>15}"
    print(header)
    for r in results:
        cams = "".join(f"{hz:>11.1f} Hz = {hz / args.camera_rate_hz:4.2f} of {args.camera_rate_hz:g}"
                       for hz in r.camera_hz.values())
        print(f"  {r.transport:<10}{r.command_hz:>8.2f} Hz = {r.command_hz / spec.rate_hz:4.2f} x spec{cams}"
              f"{r.held_ticks:>12}{r.hold_events:>13}{r.inference_p50_ms:>12} ms")
    if len(results) == 2:
        a, b = results
        print(f"  {b.transport} / {a.transport}: commands {b.command_hz / max(a.command_hz, 1e-9):.2f}, cameras "
              + ", ".join(f"{n} {b.camera_hz[n] / max(a.camera_hz[n], 1e-9):.2f}" for n in a.camera_hz))


if __name__ == "__main__":
    main()
