"""Closed-loop evaluation on the simulated robot: does the policy feed the dog?

    hpt-ros sim-eval [--model M] --episodes 50 --seed 1000 --out DIR

Each episode runs the real ``PolicyNode`` against the real ``FakeRobot`` (MuJoCo) on
one simulated clock (``ReplayTransport``: the same nodes and topics as the live demo,
deterministic, faster than real time on a free core). The scene is ``(seed, episode)``:
demonstrations are recorded with another seed, so these are held-out treat positions.
An episode ends ``settle_s`` after the treat first lies at rest in the bowl (success,
judged by the physics) or at ``max_seconds`` (failure).

Writes ``metrics.json`` (success rate with its 95 % Wilson interval, time to success,
safety events, per episode and overall), ``report.md`` and, per episode, a video of the
third-person camera with the outcome written on the frames (``videos/``). ``--view`` serves
each episode live in Foxglove while it runs (``hpt_ros.view``, on the simulated clock).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np

__all__ = ["EXPERT", "SimEpisode", "run_sim_episode", "sim_evaluate", "wilson_interval", "write_episode_video",
           "write_gif"]

logger = logging.getLogger("hpt_ros.evaluate")


def wilson_interval(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """The Wilson score interval of a success rate (95 % for z = 1.96); (0, 1) for n = 0."""
    if n <= 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


@dataclass
class SimEpisode:
    """One closed-loop episode's outcome."""

    seed: int
    episode: int
    success: bool
    time_to_success: float | None
    duration_s: float
    commands: int
    held_ticks: int
    hold_events: int
    hold_reasons: dict[str, int] = field(default_factory=dict)
    inference_failures: int = 0
    max_joint_step: float = 0.0
    closest_treat_to_bowl: float = float("nan")
    final_treat: list[float] = field(default_factory=list)
    video: str | None = None
    wall_s: float = 0.0


#: ``engine`` value that runs the scripted expert (the demonstrations' teacher) instead of a policy
EXPERT = "expert"


def run_sim_episode(spec: Any, engine: Any, *, seed: int, episode: int, task: str = "feed_dog",
                    max_seconds: float = 15.0, settle_s: float = 1.0, width: int = 224, height: int = 224,
                    camera_rate_hz: float = 15.0, video_path: Path | None = None, gif_path: Path | None = None,
                    start_time: float = 1.7e9, view: Any = None) -> SimEpisode:
    """One episode of ``engine`` on the simulated robot; writes ``video_path`` (mp4) if given, and
    ``gif_path`` (a GIF of the same frames) if given and the episode succeeded. ``view``: a
    ``FoxgloveView`` that serves the episode live (on the simulated clock).

    ``engine``: an ``Engine`` run by the policy node, or ``EXPERT``: the scripted teleoperator
    node (with its recording noise) drives the robot instead, for the teacher's own rate.
    """
    from hpt_ros.msgs import messages
    from hpt_ros.nodes.fake_robot import FakeRobot
    from hpt_ros.nodes.policy_node import PolicyNode
    from hpt_ros.ros.replay import ReplayTransport
    from hpt_ros.ros.transport import QOS_DEFAULT, QOS_SENSOR_DATA

    started = time.perf_counter()
    world = ReplayTransport("fake_robot", {"seed": seed, "episode": episode, "task": task, "width": width,
                                           "height": height, "camera_rate_hz": camera_rate_hz},
                            start_time=start_time, record=False)
    robot = FakeRobot(world, spec)
    if engine == EXPERT:
        from hpt_ros.nodes.scripted_teleop import ScriptedTeleopNode

        node: Any = ScriptedTeleopNode(world.sibling("scripted_teleop", {"seed": seed, "episode": episode,
                                                                         "task": task, "follow_recorder": False}),
                                       spec)
    else:
        node = PolicyNode(world.sibling("policy_node", {"auto_enable": True}), spec, engine=engine)
    watcher = world.sibling("sim_eval")
    viewer = world.sibling("foxglove_view") if view is not None else None
    if view is not None:
        view.attach(viewer)
    frames: list[np.ndarray] = []
    third = spec.image_sensors[1].topic if len(spec.image_sensors) > 1 else spec.image_sensors[0].topic
    if video_path is not None:
        watcher.create_subscription(third, "sensor_msgs/msg/Image",
                                    lambda m: frames.append(messages.image_to_rgb(m, topic=third)), QOS_SENSOR_DATA)
    commands: list[np.ndarray] = []

    def on_command(msg: Any) -> None:
        if spec.action.command.type.endswith("JointTrajectory") and msg.points:
            commands.append(np.asarray(msg.points[-1].positions, dtype=np.float64))

    watcher.create_subscription(spec.action.command.topic, spec.action.command.type, on_command, QOS_DEFAULT)
    sim = robot.sim
    closest = [float("inf")]

    def done() -> bool:
        p = sim.treat_position()
        bx, by = sim.layout.bowl_xy
        closest[0] = min(closest[0], math.hypot(p[0] - bx, p[1] - by))
        if sim.time_to_success is not None and sim.elapsed >= sim.time_to_success + settle_s:
            return True
        return sim.elapsed >= max_seconds

    world.run(stop=done)
    success = sim.success() and sim.time_to_success is not None
    reasons: dict[str, int] = {}
    if engine == EXPERT:
        stats = _ExpertStats(commands=node.commands_sent)
    else:
        stats = node.runtime.stats()
        for event in node.runtime.events:
            if event.kind == "hold":
                reasons[event.reason] = reasons.get(event.reason, 0) + 1
    steps = np.abs(np.diff(np.stack(commands), axis=0)).max() if len(commands) > 1 else 0.0
    result = SimEpisode(seed=seed, episode=episode, success=bool(success),
                        time_to_success=None if not success else round(float(sim.time_to_success), 3),
                        duration_s=round(sim.elapsed, 3), commands=stats.commands, held_ticks=stats.holds,
                        hold_events=stats.hold_events, hold_reasons=reasons,
                        inference_failures=stats.inference_failures, max_joint_step=round(float(steps), 5),
                        closest_treat_to_bowl=round(closest[0], 4),
                        final_treat=[round(float(v), 4) for v in sim.treat_position()])
    if video_path is not None and frames:
        write_episode_video(video_path, frames, camera_rate_hz, result)
        result.video = video_path.name
        if result.success and gif_path is not None:
            write_gif(gif_path, frames[::2], camera_rate_hz / 2)
    result.wall_s = round(time.perf_counter() - started, 2)
    for t in (watcher, viewer, node.transport, world):
        if t is not None:
            t.shutdown()
    return result


@dataclass
class _ExpertStats:
    commands: int
    holds: int = 0
    hold_events: int = 0
    inference_failures: int = 0


def write_episode_video(path: Path, frames: Sequence[np.ndarray], fps: float, result: SimEpisode) -> Path:
    """MP4 (MPEG-4) of ``frames`` with the episode and its outcome written on every frame."""
    import cv2

    h, w = frames[0].shape[:2]
    scale = max(1, int(round(448 / max(h, w))))
    size = (w * scale, h * scale)
    path.parent.mkdir(parents=True, exist_ok=True)
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), float(fps), size)
    if not writer.isOpened():
        raise RuntimeError(f"{path}: OpenCV could not open an MPEG-4 video writer")
    dt = 1.0 / fps
    for i, rgb in enumerate(frames):
        img = cv2.resize(np.ascontiguousarray(rgb[..., ::-1]), size, interpolation=cv2.INTER_NEAREST)
        t = i * dt
        succeeded = result.success and result.time_to_success is not None and t >= result.time_to_success
        label = f"episode {result.episode}  t={t:4.1f}s"
        verdict = "SUCCESS" if succeeded else ("running" if t < result.duration_s - dt else "FAILURE")
        colour = (40, 170, 40) if succeeded else ((30, 30, 200) if verdict == "FAILURE" else (40, 40, 40))
        cv2.putText(img, label, (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.55, (20, 20, 20), 2, cv2.LINE_AA)
        cv2.putText(img, verdict, (8, 46), cv2.FONT_HERSHEY_SIMPLEX, 0.7, colour, 2, cv2.LINE_AA)
        writer.write(img)
    writer.release()
    return path


def write_gif(path: Path, frames: Sequence[np.ndarray], fps: float) -> Path:
    """An animated GIF of RGB ``frames`` (for a README or an issue: it plays everywhere)."""
    from PIL import Image

    images = [Image.fromarray(np.ascontiguousarray(f)) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], duration=int(round(1000 / fps)), loop=0,
                   optimize=True)
    return path


def _summary(episodes: list[SimEpisode]) -> dict[str, Any]:
    n = len(episodes)
    wins = [e for e in episodes if e.success]
    low, high = wilson_interval(len(wins), n)
    times = [e.time_to_success for e in wins if e.time_to_success is not None]
    holds: dict[str, int] = {}
    for e in episodes:
        for k, v in e.hold_reasons.items():
            holds[k] = holds.get(k, 0) + v
    return {
        "episodes": n,
        "successes": len(wins),
        "success_rate": len(wins) / n if n else None,
        "success_rate_ci95": [round(low, 4), round(high, 4)],
        "time_to_success_s": {"mean": float(np.mean(times)) if times else None,
                              "median": float(np.median(times)) if times else None},
        "safety": {"held_ticks": sum(e.held_ticks for e in episodes),
                   "hold_events": sum(e.hold_events for e in episodes), "hold_reasons": holds,
                   "inference_failures": sum(e.inference_failures for e in episodes),
                   "max_joint_step": max((e.max_joint_step for e in episodes), default=0.0)},
    }


def sim_evaluate(model: str | None, *, episodes: int, seed: int, out: str | Path, robot: str = "franka_fr3",
                 task: str = "feed_dog", max_seconds: float = 15.0, engine: Any = None, backend: str | None = None,
                 precision: str | None = None, videos: bool = True, width: int = 224, height: int = 224,
                 camera_rate_hz: float = 15.0, progress: bool = True, threads: int | None = None,
                 view: Any = None) -> dict[str, Any]:
    """Run ``episodes`` closed-loop episodes (scenes ``(seed, 0..episodes-1)``); write and return the metrics.

    ``view`` (``hpt_ros.view.ViewOptions``): serve every episode live in Foxglove while it runs.
    """
    from tqdm import tqdm

    from hpt_ros.evaluate.metrics import json_safe
    from hpt_ros.evaluate.sim_report import write_sim_report
    from hpt_ros.spec import load_spec

    spec = load_spec(robot)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if model == EXPERT:
        engine = EXPERT
    if engine is None:
        from hpt_ros.engine.factory import load_engine
        from hpt_ros.resources import default_model_path

        if not model:
            model = default_model_path()
            if model is None:
                raise FileNotFoundError("no --model given and no default model shipped in models/franka_fr3_feed_dog")

        engine = load_engine(model or None, spec, backend=backend, precision=precision, threads=threads)
        engine.warmup(iterations=2)
    quiet = [logging.getLogger(f"hpt_ros.{n}") for n in ("fake_robot", "policy_node", "scripted_teleop", "sim_eval",
                                                         "runtime", "safety")]
    levels = [q.level for q in quiet]
    for q in quiet:
        q.setLevel(logging.WARNING)
    results: list[SimEpisode] = []
    gif = out / "success.gif"
    gif.unlink(missing_ok=True)
    bar = tqdm(range(episodes), desc="sim-eval", unit="episode", disable=not progress)
    foxglove_view = None
    if view is not None:
        from hpt_ros.view.bridge import FoxgloveView

        foxglove_view = FoxgloveView(spec, host=view.host, port=view.port, name="hpt_ros_sim_eval")
    try:
        for k in bar:
            video = out / "videos" / f"episode_{k:04d}.mp4" if videos else None
            r = run_sim_episode(spec, engine, seed=seed, episode=k, task=task, max_seconds=max_seconds,
                                width=width, height=height, camera_rate_hz=camera_rate_hz, video_path=video,
                                gif_path=None if gif.exists() else gif, view=foxglove_view)
            results.append(r)
            wins = sum(e.success for e in results)
            bar.set_postfix(success=f"{wins}/{len(results)}")
    finally:
        for q, level in zip(quiet, levels):
            q.setLevel(level)
        if foxglove_view is not None:
            foxglove_view.close()
    metrics = {
        "model": str(model) if model else "default",
        "engine": engine.describe() if hasattr(engine, "describe") else ("scripted expert (teleop node, recording "
                                                                         "noise)" if engine == EXPERT else str(engine)),
        "robot": spec.name,
        "task": task,
        "seed": seed,
        "max_seconds": max_seconds,
        "camera": f"{width}x{height} at {camera_rate_hz:g} Hz",
        "overall": _summary(results),
        "per_episode": [asdict(r) for r in results],
    }
    (out / "metrics.json").write_text(json.dumps(json_safe(metrics), indent=2))
    write_sim_report(metrics, out / "report.md")
    return metrics


def cli(argv: Sequence[str], prog: str = "hpt-ros sim-eval") -> int:
    import argparse

    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="checkpoint dir or .onnx (default: the shipped model); "
                                                    "'expert': the scripted expert that made the demonstrations")
    parser.add_argument("--robot", default="franka_fr3", help="robot spec YAML or shipped name")
    parser.add_argument("--episodes", type=int, default=20, help="number of episodes (default 20)")
    parser.add_argument("--seed", type=int, default=1000,
                        help="scene seed (default 1000; the shipped model's demonstrations used seed 0)")
    parser.add_argument("--out", default="sim_eval", help="output folder (default ./sim_eval)")
    parser.add_argument("--max-seconds", type=float, default=15.0, help="episode time limit, simulated [s]")
    parser.add_argument("--engine", default="", choices=["", "torch", "onnxruntime"])
    parser.add_argument("--precision", default="", choices=["", "fp32", "bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=None, help="inference threads")
    parser.add_argument("--no-video", action="store_true", help="skip the per-episode videos")
    from hpt_ros.view.options import add_view_arguments, view_options

    add_view_arguments(parser)
    args = parser.parse_args(list(argv))
    if args.episodes < 1:
        parser.error("--episodes must be at least 1")
    metrics = sim_evaluate(args.model or None, episodes=args.episodes, seed=args.seed, out=args.out,
                           robot=args.robot, max_seconds=args.max_seconds, backend=args.engine or None,
                           precision=args.precision or None, videos=not args.no_video, threads=args.threads,
                           view=view_options(args))
    o = metrics["overall"]
    low, high = o["success_rate_ci95"]
    print(f"success {o['successes']}/{o['episodes']} = {o['success_rate']:.0%} (95 % CI {low:.0%}-{high:.0%}); "
          f"report: {Path(args.out) / 'report.md'}")
    return 0
