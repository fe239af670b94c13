"""teleop_recorder: record demonstrations, one rosbag2 (mcap) per episode, with episode metadata.

    ros2 run hpt_ros teleop_recorder --ros-args -p robot_config:=franka_fr3 -p output_dir:=demos
    hpt-ros record --robot franka_fr3 --task feed_dog --output demos        # pure pip, over DDS
    hpt-ros record --output demos --episodes 10 --episode-duration 20 --reset-robot   # no human

What is recorded: the spec's sensors (cameras, joint states) and the teleoperator's action
source (``action_source``: the commands sent to the robot's controller — the spec's
command topic and gripper topic — by default, or a leader arm's JointState, a SpaceMouse
TwistStamped, a VR PoseStamped; see :mod:`hpt_ros.nodes.recorder_topics`), plus any
``extra_topics``. Subscriptions are raw: the CDR bytes go into the bag exactly as they
came off the wire (no deserialise/serialise round trip); the bag timestamp is the
receive time on the transport's clock (what ``ros2 bag record`` stores).

Each episode is ``OUTPUT/episode_NNNN/`` — a rosbag2 bag (metadata.yaml + mcap, written
by :class:`~hpt_ros.data.EpisodeWriter`) that ``ros2 bag info/play`` and Foxglove read —
with ``episode.yaml`` beside it: task, episode index, operator, success, notes, spec
hash, how it ended (``ended_by``, ``interrupted``) and the recorder's counters.

Episode control
---------------
* Topics (the portable path: works over rclpy and the pure-pip dds transport, which
  has no services): ``/hpt_recorder/command`` (std_msgs/String) takes ``start``,
  ``save``, ``save_failure``, ``discard``, ``restart`` (discard + start; in auto mode the
  next attempt follows the reset), ``quit`` and ``note <text>`` (notes of the current or
  next episode); ``/hpt_recorder/status`` (std_msgs/String, latched: reliable,
  transient local) holds a JSON object (``state``, ``episode``, ``elapsed_s``,
  ``saved``, ``discarded``, ``last_episode``, rates, drops) on every change and every second.
  ``ros2 topic pub --once /hpt_recorder/command std_msgs/msg/String "{data: save}"``.
* Keys, when stdin is a terminal: s = start, Enter/space = save, f = save as failure,
  d = discard, r = discard and restart, q = quit. A status line (episode, elapsed time,
  per-topic rates, dropped / lost / late messages) is redrawn in place; without a
  terminal the same appears as a log line every ``status_period_s``.
* Auto mode (``episodes`` > 0): N episodes of ``episode_duration_s`` back to back,
  optionally publishing ``/fake_robot/reset`` (std_msgs/Float64MultiArray ``[index]``)
  before each so the scene changes; then the node exits.

Nothing lost
------------
* SIGINT / SIGTERM / SIGHUP (and ``quit``) close the current episode cleanly: it is saved,
  ``interrupted: true`` and ``ended_by: SIGINT`` for a signal; the exit status is then 0.
  A second signal stops at once (the bag stays repairable).
* SIGKILL: the writer flushes every 0.5 s, so at most the last ~second is missing (plus
  what waits in the writer queue — milliseconds, unless the disk stalls; ``max_queued_mb``
  in episode.yaml); ``hpt-ros bag repair OUTPUT/episode_NNNN`` (or
  ``open_bag(path, recover=True)``) reads the rest.
* An output directory that cannot be written or a disk with less than ``min_free_gb``
  free is a clear error before any episode starts, and the node exits with status 1; a
  write error during an episode closes what was recorded and exits with status 1.

Counters: ``dropped`` = messages the recorder itself could not record (writer queue
full, write error); ``lost`` = samples DDS reports lost before they reached the recorder
(dds transport only); ``late`` = receive time - header stamp > ``late_threshold_s``
(clock offsets between machines count too). A reader whose QoS cannot match a publisher
(a reliable reader and a best-effort writer) is reported as an error on the dds transport.

Receive path: the transport's message thread only timestamps each message and appends
it to the episode's queue; a writer thread feeds the bag (see
:mod:`hpt_ros.nodes.recorder_episode`). ``bench/bench_recorder.py`` measures it: two
640x480 rgb8 cameras at 30 Hz plus a 1 kHz JointState take ~0.15 of a core. Messages
can still be lost before the recorder sees them when the machine is saturated: the
kernel drops UDP datagrams when the DDS receive thread gets no CPU for long enough to
fill the socket buffer. ``--nice -10`` (root) and a larger Cyclone socket buffer
(``Internal/SocketReceiveBufferSize``, ``net.core.rmem_max``) prevent that.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from typing import Any

from hpt_ros.data import BagError

# The node and its parts live in their own modules; the public names stay importable here.
from .recorder_console import KEY_HELP
from .recorder_node import COMMAND_TOPIC, COMMANDS, RESET_TOPIC, STATUS_TOPIC, TeleopRecorder
from .recorder_setup import check_output_dir

__all__ = ["COMMANDS", "COMMAND_TOPIC", "STATUS_TOPIC", "TeleopRecorder", "check_output_dir", "cli", "main"]


def main(args: list[str] | None = None) -> None:
    """``ros2 run hpt_ros teleop_recorder`` (rclpy transport; rclpy's handlers stop spinning on SIGINT/SIGTERM)."""
    from hpt_ros.ros import make_transport

    transport = make_transport("rclpy", "teleop_recorder", args=args)
    recorder: TeleopRecorder | None = None
    code, reason = 0, None
    try:
        recorder = TeleopRecorder(transport)
        transport.spin(until=lambda: recorder.finished)
        if not recorder.finished:
            reason = "signal"  # rclpy's SIGINT/SIGTERM handler shut the context down
    except KeyboardInterrupt:
        reason = "SIGINT"
    except (BagError, ValueError, FileNotFoundError) as exc:
        transport.logger.error("%s", exc)
        code, reason = 1, "error"
    except Exception as exc:  # noqa: BLE001 - keep what was recorded, then report
        transport.logger.exception("recorder failed: %s", exc)
        code, reason = 1, f"error: {type(exc).__name__}: {exc}"
    finally:
        try:
            if recorder is not None:
                code = recorder.close(reason) or code
        finally:
            transport.shutdown()
    if code:
        sys.exit(code)


def build_arg_parser(prog: str = "hpt-ros record") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog, description="Record teleoperated episodes into rosbag2 (mcap), one bag per episode, over DDS.",
        epilog=f"keys on a terminal: {KEY_HELP}. Topic control: {COMMAND_TOPIC} (std_msgs/String: start, save, "
               f"save_failure, discard, restart, quit, 'note TEXT'); status (JSON, latched): {STATUS_TOPIC}.")
    parser.add_argument("--robot", default="franka_fr3", help="robot spec YAML or shipped name (default franka_fr3)")
    parser.add_argument("--task", default="feed_dog", help="task YAML / name in config/tasks, or free text")
    parser.add_argument("--output", "-o", default="demos", help="folder for episode_NNNN bags (default ./demos)")
    parser.add_argument("--operator", default="", help="operator name (default: the user)")
    parser.add_argument("--notes", default="", help="notes stored with every episode")
    parser.add_argument("--action-source", default="command", choices=["command", "joint_state", "twist", "pose"],
                        help="what the teleoperator's action is (default: the spec's command + gripper topics)")
    parser.add_argument("--action-topic", default="", help="action topic (default: per source)")
    parser.add_argument("--action-gripper-topic", default="", help="gripper action topic ('none' = no gripper)")
    parser.add_argument("--action-gripper-type", default="", help="gripper action message type")
    parser.add_argument("--extra-topic", action="append", default=[], metavar="TOPIC:TYPE",
                        help="also record this topic (repeatable)")
    parser.add_argument("--best-effort-topic", action="append", default=[], metavar="TOPIC",
                        help="read this topic best effort (images always are; repeatable)")
    parser.add_argument("--episodes", type=int, default=0, help="auto mode: record N episodes back to back, then exit")
    parser.add_argument("--episode-duration", type=float, default=0.0,
                        help="episode length [s] (auto: default the task's; manual: default no limit)")
    parser.add_argument("--reset-robot", action="store_true",
                        help=f"auto mode: publish {RESET_TOPIC} [index] before each episode")
    parser.add_argument("--reset-topic", default=RESET_TOPIC)
    parser.add_argument("--reset-settle", type=float, default=1.0, help="wait after a reset [s] (default 1)")
    parser.add_argument("--wait-for-topics", type=float, default=10.0,
                        help="auto mode: wait up to this long for every sensor before the first episode")
    parser.add_argument("--min-free-gb", type=float, default=1.0, help="free disk space required (default 1 GB)")
    parser.add_argument("--no-fsync", action="store_true", help="do not fsync at each flush")
    parser.add_argument("--flush-interval", type=float, default=0.5, help="flush the bag this often [s]")
    parser.add_argument("--no-keyboard", action="store_true", help="ignore keys even on a terminal")
    parser.add_argument("--status-period", type=float, default=5.0, help="status log period without a terminal [s]")
    parser.add_argument("--late-threshold", type=float, default=0.1, help="receive - stamp above this is late [s]")
    parser.add_argument("--distro", default="humble", help="message definitions written into the bag")
    parser.add_argument("--nice", type=int, default=0,
                        help="run at this nice value, e.g. -10 (needs root or CAP_SYS_NICE): on a busy machine the "
                             "DDS receive thread then gets the CPU first (see bench/bench_recorder.py)")
    return parser


def cli(argv: list[str], prog: str = "hpt-ros record") -> int:
    """``hpt-ros record`` (dds transport). Exit status 0 when every episode was closed cleanly,
    1 on an error (output folder not writable, disk full, write failure, bad settings)."""
    from hpt_ros.ros import TransportError, make_transport

    args = build_arg_parser(prog).parse_args(argv)
    parameters = {
        "robot_config": args.robot, "task": args.task, "output_dir": args.output, "operator": args.operator,
        "notes": args.notes, "action_source": args.action_source, "action_topic": args.action_topic,
        "action_gripper_topic": args.action_gripper_topic, "action_gripper_type": args.action_gripper_type,
        "extra_topics": ",".join(args.extra_topic), "best_effort_topics": ",".join(args.best_effort_topic),
        "episodes": args.episodes, "episode_duration_s": args.episode_duration, "reset_robot": args.reset_robot,
        "reset_topic": args.reset_topic, "reset_settle_s": args.reset_settle,
        "wait_for_topics_s": args.wait_for_topics, "min_free_gb": args.min_free_gb, "fsync": not args.no_fsync,
        "flush_interval_s": args.flush_interval, "keyboard": not args.no_keyboard,
        "status_period_s": args.status_period, "late_threshold_s": args.late_threshold, "distro": args.distro,
    }
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    received: list[str] = []

    def on_signal(signum: int, _frame: Any) -> None:
        if received:  # a second signal: stop now (the bag stays repairable)
            raise KeyboardInterrupt
        received.append(signal.Signals(signum).name)

    if args.nice:
        # Linux: per thread, inherited by threads created later (DDS receive, message, writer).
        try:
            os.setpriority(os.PRIO_PROCESS, 0, args.nice)
        except OSError as err:
            logging.getLogger("hpt_ros.teleop_recorder").warning("--nice %d not applied: %s", args.nice, err)
    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)}
    transport = None
    recorder: TeleopRecorder | None = None
    code, reason = 0, None
    try:
        transport = make_transport("dds", "teleop_recorder", parameters=parameters)
        recorder = TeleopRecorder(transport)
        transport.spin(until=lambda: recorder.finished or bool(received))
        reason = received[0] if received else None
    except KeyboardInterrupt:  # a second signal while spinning
        reason = received[0] if received else "SIGINT"
    except (BagError, TransportError, ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        code, reason = 1, "error"
    except Exception as exc:  # noqa: BLE001 - a callback failed: keep what was recorded, then report
        logging.getLogger("hpt_ros.teleop_recorder").exception("recorder failed: %s", exc)
        code, reason = 1, f"error: {type(exc).__name__}: {exc}"
    finally:
        try:
            if recorder is not None:
                code = recorder.close(reason) or code
        finally:
            if transport is not None:
                transport.shutdown()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
    return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli(sys.argv[1:], prog="python -m hpt_ros.nodes.teleop_recorder"))
