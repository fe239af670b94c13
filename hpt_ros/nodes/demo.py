"""``hpt-ros demo``: the closed loop on the built-in default, no robot and no ROS 2 install.

Starts the simulated Franka (MuJoCo) and the policy node as two processes talking DDS on
loopback and runs a few feed-the-dog episodes: for each, it resets the scene (a new
treat position), enables motion, watches the physics' verdict on
``/fake_robot/task_status`` and disables motion at success or at the time limit (a
safety event: no command may follow). It prints what a person wants to know: the
success rate, the control rate reached, the inference latency and the safety events,
and writes a video of the third-person camera per episode (and a GIF of the first
success) into ``--out``. ``--view`` serves the graph live in Foxglove (``hpt_ros.view``).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from hpt_ros.resources import DEFAULT_MODEL_NAME, default_model_path
from hpt_ros.view.options import add_view_arguments, view_options

__all__ = ["cli", "DEFAULT_MODEL_NAME", "default_model_path"]


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
    parser.add_argument("--episodes", type=int, default=3, help="feed-the-dog episodes (default 3)")
    parser.add_argument("--seed", type=int, default=1000, help="scene seed (default 1000: not the training scenes)")
    parser.add_argument("--max-seconds", type=float, default=15.0, help="time limit per episode [s]")
    parser.add_argument("--out", default="demo_output", help="videos and summary.json go here")
    add_view_arguments(parser)
    args = parser.parse_args(argv)
    view = view_options(args)

    import tempfile

    from hpt_ros.evaluate.sim_eval import SimEpisode, wilson_interval, write_episode_video, write_gif
    from hpt_ros.msgs import messages
    from hpt_ros.nodes.fake_robot import RESET_TOPIC, TASK_STATUS_TOPIC
    from hpt_ros.ros import make_transport
    from hpt_ros.ros.transport import QOS_DEFAULT, QOS_LATCHED, QOS_SENSOR_DATA
    from hpt_ros.spec import load_spec

    spec = load_spec(args.robot)
    print(spec.summary())
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    tmp = tempfile.TemporaryDirectory(prefix="hpt_ros_demo_")
    model = args.model or str(default_model_path() or "")
    if not model:
        model = str(_random_model(spec, Path(tmp.name) / "random_model", "tiny"))
    print(f"model: {model}")

    env = dict(os.environ)
    env.setdefault("ROS_DOMAIN_ID", str(80 + os.getpid() % 20))
    env.setdefault("PYTHONUNBUFFERED", "1")
    # two processes on two cores: idle OpenMP threads must sleep, not spin against the other process
    env.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    camera_rate = 15.0
    robot = _spawn(["fake-robot", "--robot", args.robot, "--seed", str(args.seed), "--camera-rate-hz",
                    str(camera_rate)], "fake_robot", env)
    policy = _spawn(["policy", "--robot", args.robot, "--model", model,
                     *(["--engine", args.engine] if args.engine else []),
                     *(["--precision", args.precision] if args.precision else [])], "policy_node", env)
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    monitor = make_transport("dds", "demo_monitor")
    foxglove_view = None
    if view is not None:  # the monitor sees the whole graph: the view subscribes beside it
        from hpt_ros.view.bridge import FoxgloveView

        foxglove_view = FoxgloveView(spec, host=view.host, port=view.port, name="hpt_ros_demo")
        foxglove_view.attach(monitor)
        print(f"live view: open {foxglove_view.url} in Foxglove")
    command_times: list[float] = []
    diagnostics: dict[str, str] = {}
    status: dict[str, Any] = {}
    frames: list[np.ndarray] = []
    recording = threading.Event()
    third = spec.image_sensors[-1].topic

    def on_command(_msg: Any) -> None:
        command_times.append(time.monotonic())

    def on_diagnostics(msg: Any) -> None:
        values = messages.diagnostic_values(msg, "policy")
        if values is not None:
            diagnostics.clear()
            diagnostics.update(values)

    def on_status(msg: Any) -> None:
        status.update(messages.json_object(msg))

    def on_image(msg: Any) -> None:
        if recording.is_set():
            frames.append(messages.image_to_rgb(msg, topic=third))

    monitor.create_subscription(spec.action.command.topic, spec.action.command.type, on_command, QOS_DEFAULT)
    monitor.create_subscription("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", on_diagnostics)
    monitor.create_subscription(TASK_STATUS_TOPIC, "std_msgs/msg/String", on_status, QOS_LATCHED)
    monitor.create_subscription(third, "sensor_msgs/msg/Image", on_image, QOS_SENSOR_DATA)
    enable_pub = monitor.create_publisher(spec.safety.enable_topic, "std_msgs/msg/Bool")
    reset_pub = monitor.create_publisher(RESET_TOPIC, "std_msgs/msg/Float64MultiArray")

    def enable(value: bool) -> None:
        msg = monitor.new_message("std_msgs/msg/Bool")
        messages.fill_bool(msg, value)
        enable_pub.publish(msg)

    def reset(episode: int) -> None:
        msg = monitor.new_message("std_msgs/msg/Float64MultiArray")
        messages.fill_float64_multi_array(msg, [float(episode)])
        reset_pub.publish(msg)

    code = 0
    results: list[SimEpisode] = []
    rates: list[float] = []
    commands_after_disable = 0
    try:
        # the policy node is up when its first diagnostics arrive (model load and warm-up: up to 120 s)
        deadline = time.monotonic() + 120
        monitor.spin(duration_s=120, until=lambda: (bool(diagnostics) and bool(status)) or policy.poll() is not None
                     or robot.poll() is not None or time.monotonic() > deadline)
        if policy.poll() is not None or robot.poll() is not None or not diagnostics:
            print("error: the policy node or the fake robot did not come up", file=sys.stderr)
            return 1
        for episode in range(args.episodes):
            reset(episode)
            monitor.spin(duration_s=2.0, until=lambda: status.get("episode") == episode and status["elapsed"] < 1.0)
            monitor.spin(duration_s=0.5)  # fresh frames of the new scene
            frames.clear()
            recording.set()
            print(f"\nepisode {episode}: enabling motion (at most {args.max_seconds:g} s) ...")
            t_enable = time.monotonic()
            enable(True)
            monitor.spin(duration_s=args.max_seconds + 1.0, until=lambda: (
                status.get("success") and status.get("time_to_success") is not None
                and status["elapsed"] > status["time_to_success"] + 1.0) or time.monotonic() - t_enable > args.max_seconds)
            enable(False)
            recording.clear()
            t_disable = time.monotonic()
            window = [t for t in command_times if t_enable <= t <= t_disable]
            if len(window) > 2:
                rates.append((len(window) - 1) / (window[-1] - window[0]))
            monitor.spin(duration_s=1.0)
            commands_after_disable += len([t for t in command_times if t > t_disable + 0.2])
            success = bool(status.get("success"))
            result = SimEpisode(seed=args.seed, episode=episode, success=success,
                                time_to_success=status.get("time_to_success") if success else None,
                                duration_s=round(t_disable - t_enable, 2), commands=len(window),
                                held_ticks=int(diagnostics.get("held_ticks", "0")),
                                hold_events=int(diagnostics.get("hold_events", "0")),
                                final_treat=list(status.get("treat", [])))
            if frames:
                write_episode_video(out / f"episode_{episode:04d}.mp4", frames, camera_rate, result)
                result.video = f"episode_{episode:04d}.mp4"
                if success and not (out / "success.gif").exists():
                    write_gif(out / "success.gif", frames[::2], camera_rate / 2)
            results.append(result)
            verdict = f"SUCCESS in {result.time_to_success:.1f} s" if success else "failure"
            print(f"episode {episode}: {verdict}; {len(window)} commands")
        wins = sum(r.success for r in results)
        low, high = wilson_interval(wins, len(results))
        snapshot = dict(diagnostics)
        print("\n=== hpt_ros demo summary ===")
        print(f"success: {wins}/{len(results)} episodes (95 % interval {low:.0%}-{high:.0%}); "
              f"judged by the physics: the treat at rest in the bowl")
        rate = float(np.median(rates)) if rates else 0.0
        print(f"control rate: {rate:.2f} Hz commanded (target {spec.rate_hz:g} Hz); "
              f"node reports {snapshot.get('rate_hz', 'n/a')} Hz")
        print(f"inference latency: p50 {snapshot.get('inference_p50_ms', 'n/a')} ms, "
              f"p99 {snapshot.get('inference_p99_ms', 'n/a')} ms")
        print(f"safety: hold events {snapshot.get('hold_events', 'n/a')} (each disable is one), held ticks "
              f"{snapshot.get('held_ticks', 'n/a')}, commands after disabling: {commands_after_disable}")
        print(f"videos: {out.resolve()}/episode_*.mp4"
              + (f"; a successful episode: {(out / 'success.gif').resolve()}" if (out / "success.gif").exists() else ""))
        (out / "summary.json").write_text(json.dumps({
            "model": model, "seed": args.seed, "successes": wins, "episodes": len(results),
            "success_rate_ci95": [low, high], "control_rate_hz": rate, "diagnostics": snapshot,
            "commands_after_disable": commands_after_disable,
            "per_episode": [r.__dict__ for r in results]}, indent=2, default=str))
        if not command_times:
            print("error: no command arrived while enabled", file=sys.stderr)
            code = 1
        if commands_after_disable:
            print("error: commands arrived after motion was disabled", file=sys.stderr)
            code = 1
    except KeyboardInterrupt:
        code = 130
    finally:
        monitor.shutdown()
        if foxglove_view is not None:
            foxglove_view.close()
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
