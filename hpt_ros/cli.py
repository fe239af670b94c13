"""``hpt-ros``: the offline and pure-pip command line (no ROS 2 install needed).

Each subcommand imports its layer lazily, so ``hpt-ros spec check`` starts fast and
never needs torch, DDS or rclpy.
"""

from __future__ import annotations

import argparse
import logging
import sys
from typing import Callable

__all__ = ["main", "build_parser"]


def _cmd_spec_check(args: argparse.Namespace) -> int:
    from hpt_ros.spec import SpecError, load_spec

    status = 0
    for path in args.files:
        try:
            spec = load_spec(path)
        except SpecError as exc:
            print(f"error: {exc}", file=sys.stderr)
            status = 1
            continue
        print(spec.summary())
        print("ok")
    return status


def _cmd_model_info(args: argparse.Namespace) -> int:
    from hpt_ros.model.info import describe, strict_load_report

    print(describe(args.path))
    loads, lines = strict_load_report(args.path)
    print("\n".join(lines))
    return 0 if loads else 1


def _lazy(module: str, func: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        import importlib

        return importlib.import_module(module).__getattribute__(func)(args)

    return run


# (name, help, module that adds arguments and runs it)
_SUBCOMMANDS: list[tuple[str, str, str]] = [
    ("demo", "closed-loop demo: fake Franka FR3 + policy node over DDS on loopback", "hpt_ros.nodes.demo"),
    ("policy", "run the policy node over DDS (no ROS 2 install needed)", "hpt_ros.nodes.policy_node"),
    ("fake-robot", "run the simulated Franka (MuJoCo: joint states + two cameras) over DDS", "hpt_ros.nodes.fake_robot"),
    ("record", "record teleoperated episodes into rosbag2 (mcap)", "hpt_ros.nodes.teleop_recorder"),
    ("teleop", "scripted teleoperator for the fake robot (demonstrations with no human)", "hpt_ros.nodes.scripted_teleop"),
    ("export-onnx", "export a checkpoint's whole policy to one ONNX file", "hpt_ros.engine.export"),
    ("eval", "replay-evaluate a policy on recorded bags", "hpt_ros.evaluate.cli"),
    ("sim-eval", "closed-loop success rate of a policy on the simulated robot", "hpt_ros.evaluate.sim_eval"),
    ("latency-table", "closed-loop success and command jumps, synchronous vs asynchronous, at simulated latencies",
     "hpt_ros.evaluate.latency_table"),
    ("train", "fine-tune stems and head over a pretrained HPT trunk", "hpt_ros.train.cli"),
    ("view", "live view in Foxglove: the DDS graph's cameras, joints, commands, chunks, safety, diagnostics",
     "hpt_ros.view.cli"),
    ("export-lerobot", "write rosbag2 episodes as a LeRobotDataset v3.0", "hpt_ros.data.lerobot_export"),
    ("import-lerobot", "write a LeRobotDataset v3.0 as rosbag2 episodes", "hpt_ros.data.lerobot_import"),
    ("chaos", "seeded fault-injection campaign: unsafe commands counted under random faults", "hpt_ros.chaos.campaign"),
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpt-ros", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    spec = sub.add_parser("spec", help="robot spec YAML tools").add_subparsers(dest="spec_command", required=True)
    check = spec.add_parser("check", help="validate robot spec files and print their summary")
    check.add_argument("files", nargs="+", metavar="FILE")
    check.set_defaults(run=_cmd_spec_check)

    model = sub.add_parser("model", help="model tools").add_subparsers(dest="model_command", required=True)
    info = model.add_parser("info", help="sizes, parameter counts, trunk checksum of a checkpoint, and whether it "
                            "loads strictly (exit status 1 if not)")
    info.add_argument("path", metavar="PATH", help="official HPT dir, trunk.pth, or an hpt_ros checkpoint dir")
    info.set_defaults(run=_cmd_model_info)

    bag = sub.add_parser("bag", help="bag tools").add_subparsers(dest="bag_command", required=True)
    repair = bag.add_parser("repair", help="recover the complete messages of a bag whose writer was killed")
    repair.add_argument("paths", nargs="+", metavar="BAG")
    repair.set_defaults(run=_lazy("hpt_ros.data.cli", "run_repair"))

    for name, help_text, module in _SUBCOMMANDS:
        p = sub.add_parser(name, help=help_text)
        p.set_defaults(module=module)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    # Subcommands that own a full argument parser (shared with their ros2 executable)
    # get the rest of the command line untouched.
    for name, _, module in _SUBCOMMANDS:
        if argv[:1] == [name] or (len(argv) > 1 and argv[0] in ("-v", "--verbose") and argv[1] == name):
            verbose = argv[0] in ("-v", "--verbose")
            rest = argv[argv.index(name) + 1 :]
            _setup_logging(verbose)
            import importlib

            return int(importlib.import_module(module).cli(rest, prog=f"hpt-ros {name}") or 0)
    args = parser.parse_args(argv)
    _setup_logging(args.verbose)
    try:
        return int(args.run(args) or 0)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1


def _setup_logging(verbose: bool) -> None:
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="[%(levelname)s] [%(name)s]: %(message)s",
    )


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
