"""``hpt-ros eval`` and the ``replay_eval`` ROS 2 executable: one argument parser for both.

    hpt-ros eval --bags demos/episode_0000 demos/episode_0001 --robot franka_fr3 \\
        --model models/franka_fr3_feed_dog --out eval/
    ros2 run hpt_ros replay_eval --bags ... --robot ... --model ... --out ...

Sets ``OMP_WAIT_POLICY=PASSIVE`` (unless set) before torch loads: idle OpenMP threads sleep
instead of spinning, which keeps multi-threaded inference fast on a busy CPU.

Exit status: 0 when every bag was evaluated; 1 when at least one bag failed (its error is
in metrics.json and report.md, the others are evaluated all the same); 2 when nothing
could be evaluated at all (bad arguments, a spec or model that does not load).
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Sequence

__all__ = ["build_arg_parser", "cli", "main"]

logger = logging.getLogger("hpt_ros.evaluate")


def build_arg_parser(prog: str = "hpt-ros eval") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Replay recorded bags through the policy node on a simulated clock and compare its "
                    "commands with the recorded actions.",
    )  # fmt: skip
    parser.add_argument("--bags", nargs="+", required=True, metavar="BAG",
                        help="rosbag2 directories or bare .mcap / .db3 files")
    parser.add_argument("--robot", required=True, metavar="FILE", help="robot spec YAML (or a shipped name)")
    parser.add_argument("--model", default="", metavar="PATH",
                        help="checkpoint folder or .onnx (default: the spec's model.path)")
    parser.add_argument("--out", required=True, metavar="DIR", help="output folder: metrics.json, report.md, plots/, videos/")
    parser.add_argument("--engine", default="", choices=["", "torch", "onnxruntime"],
                        help="inference backend (default: the spec's)")
    parser.add_argument("--precision", default="", choices=["", "fp32", "bf16", "fp16"],
                        help="inference precision (default: the spec's); bf16 is checked against fp32 when built")
    parser.add_argument("--threads", type=int, default=0, help="intra-op CPU threads (default: torch's choice)")
    parser.add_argument("--rate-hz", type=float, default=0.0, help="control rate (default: the spec's)")
    parser.add_argument("--execution", default="", choices=["", "temporal_ensemble", "replan"],
                        help="chunk execution (default: the spec's)")
    parser.add_argument("--replan-every", type=int, default=0, help="ticks per chunk with --execution replan")
    parser.add_argument("--ensemble-coefficient", type=float, default=None,
                        help="temporal ensembling weight exp(-m i) coefficient m")
    timing = parser.add_mutually_exclusive_group()
    timing.add_argument("--sync", dest="asynchronous", action="store_false", default=None,
                        help="the tick waits for inference (execution.async: false; default: the spec's)")
    timing.add_argument("--async", dest="asynchronous", action="store_true",
                        help="inference beside the tick, chunks aligned to their observation (execution.async: true)")
    parser.add_argument("--action-topic", default="", metavar="TOPIC",
                        help="recorded actions from this leader-arm sensor_msgs/JointState topic instead of the "
                             "spec's command (+ gripper) topic")
    parser.add_argument("--action-joints", default="", metavar="J1,J2,...",
                        help="with --action-topic: its joint names matching the spec's action joints, in order")
    parser.add_argument("--ignore-enable", action="store_true",
                        help="keep the node enabled even when a bag has the spec's enable topic")
    parser.add_argument("--recover", action="store_true",
                        help="evaluate the complete messages of truncated MCAP files instead of failing them")
    parser.add_argument("--distro", default=None, help="ROS 2 distro for definitions a bag lacks (default: the bag's)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    parser.add_argument("--no-videos", action="store_true",
                        help="skip the per-episode videos (cameras beside the actions; the slowest output)")
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    parser.add_argument("-v", "--verbose", action="store_true", help="log every hold / resume")
    return parser


def _spec(args: argparse.Namespace):
    from hpt_ros.spec import load_spec

    spec = load_spec(args.robot)
    execution = spec.execution
    changes = {}
    if args.execution:
        changes["mode"] = args.execution
    if args.replan_every:
        changes["replan_every"] = args.replan_every
    if args.ensemble_coefficient is not None:
        changes["ensemble_coefficient"] = args.ensemble_coefficient
    if args.asynchronous is not None:
        changes["asynchronous"] = args.asynchronous
    if changes:
        execution = dataclasses.replace(execution, **changes)
        if not 1 <= execution.replan_every <= spec.action.horizon:
            raise ValueError(f"--replan-every must be in 1..{spec.action.horizon} (the horizon)")
        raw = dict(spec.raw)
        raw["execution"] = {**raw.get("execution", {}), "mode": execution.mode, "replan_every": execution.replan_every,
                            "ensemble_coefficient": execution.ensemble_coefficient, "async": execution.asynchronous}
        spec = dataclasses.replace(spec, execution=execution, raw=raw)
    if args.rate_hz:
        if args.rate_hz <= 0:
            raise ValueError("--rate-hz must be > 0")
        raw = dict(spec.raw)
        raw["robot"] = dict(raw.get("robot", {}), rate_hz=args.rate_hz)
        spec = dataclasses.replace(spec, rate_hz=args.rate_hz, raw=raw)
    return spec


def cli(argv: Sequence[str], prog: str = "hpt-ros eval") -> int:
    """Parse ``argv``, evaluate, print a summary; returns the exit status (see the module docstring)."""
    args = build_arg_parser(prog).parse_args(list(argv))
    if "torch" not in sys.modules:
        # Idle OpenMP workers sleep instead of spinning between inferences: on a busy (or
        # shared) CPU a spinning worker competes with the replay's own thread and with other
        # processes, which made 2-thread inference 2-7x slower in our measurements.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    from hpt_ros.engine.base import EngineError
    from hpt_ros.spec import SpecError

    from .api import evaluate_bags

    try:
        spec = _spec(args)
        joints = [j.strip() for j in args.action_joints.split(",") if j.strip()] or None
        metrics = evaluate_bags(
            args.bags, spec, args.model or None, args.out,
            engine=args.engine or None, precision=args.precision or None, threads=args.threads or None,
            action_topic=args.action_topic or None, action_joint_names=joints, recover=args.recover,
            distro=args.distro, enable_from_bag=not args.ignore_enable, plots=not args.no_plots,
            videos=not args.no_videos,
            progress=not args.no_progress, quiet=not args.verbose,
        )  # fmt: skip
    except (SpecError, EngineError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _print_summary(metrics, args.out)
    return 1 if metrics["overall"]["episodes_failed"] else 0


def _print_summary(metrics: dict, out: str) -> None:
    overall = metrics["overall"]
    for entry in metrics["episodes"].values():
        if entry["status"] != "ok":
            print(f"  FAILED {entry['bag']}: {entry['error']}")
            continue
        mae = entry["mae_normalized_overall"]
        speed = entry["timing"]["speed_x_realtime"]
        held = ", ".join(f"{k} x{v}" for k, v in entry["held_reasons"].items()) or "none"
        print(f"  {entry['name']}: {entry['ticks_evaluated']}/{entry['ticks']} ticks evaluated, MAE "
              f"{'n/a' if mae is None else f'{mae:.4f}'} normalised, held: {held}, "
              f"{'n/a' if speed is None else f'{speed:.2f}x'} real time")  # fmt: skip
    timing = overall["timing"]
    mae, rmse = overall["mae_normalized_overall"], overall["rmse_normalized_overall"]
    print(f"{overall['episodes_evaluated']} episode(s) evaluated, {overall['episodes_failed']} failed; "
          f"MAE {'n/a' if mae is None else f'{mae:.4f}'}, RMSE {'n/a' if rmse is None else f'{rmse:.4f}'} "
          "(normalised units)")  # fmt: skip
    if timing["speed_x_realtime"]:
        print(f"replay speed: {timing['speed_x_realtime']:.2f}x real time ({timing['bag_duration_s']:.1f} s of bags "
              f"in {timing['replay_wall_s']:.1f} s, engine {metrics['setup']['engine']})")  # fmt: skip
    print(f"results: {out}/metrics.json, {out}/report.md")


def _strip_ros_args(argv: list[str]) -> list[str]:
    """Drop ``--ros-args ... [--]`` (what ``ros2 run`` / launch may append), as rclpy would."""
    out, skipping = [], False
    for arg in argv:
        if arg == "--ros-args":
            skipping = True
            continue
        if skipping and arg == "--":
            skipping = False
            continue
        if not skipping:
            out.append(arg)
    return out


def main(argv: Sequence[str] | None = None) -> None:
    """``ros2 run hpt_ros replay_eval`` (console script; needs no ROS 2 at run time)."""
    args = _strip_ros_args(list(sys.argv[1:] if argv is None else argv))
    sys.exit(cli(args, prog="replay_eval"))
