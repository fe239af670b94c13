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
import getpass
import json
import logging
import os
import shutil
import signal
import sys
import tempfile
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpt_ros.data import (
    BagError,
    BagWriteError,
    EpisodeWriter,
    InsufficientSpaceError,
    episode_path,
    next_episode_index,
)
from hpt_ros.ros.transport import QOS_DEFAULT, QOS_LATCHED, Transport
from hpt_ros.spec import RobotSpec, load_spec

from .recorder_console import KEY_HELP, KeyReader, StatusLine
from .runner import as_bool
from .recorder_episode import DEFAULT_MAX_QUEUE_BYTES, RecordingEpisode, set_native_thread_name
from .recorder_topics import (
    RecordedTopic,
    TopicMonitor,
    bag_qos,
    header_stamp_ns,
    parse_topic_list,
    recorded_topics,
)

__all__ = ["COMMANDS", "COMMAND_TOPIC", "STATUS_TOPIC", "TeleopRecorder", "check_output_dir", "cli", "main"]

COMMAND_TOPIC = "/hpt_recorder/command"
STATUS_TOPIC = "/hpt_recorder/status"
RESET_TOPIC = "/fake_robot/reset"
COMMANDS = ("start", "save", "save_failure", "discard", "restart", "quit", "note")
_CONTROL_PERIOD_S = 0.05
_REDRAW_PERIOD_S = 0.25
_STATUS_TOPIC_PERIOD_S = 1.0


def check_output_dir(path: str | Path, min_free_bytes: int) -> Path:
    """Fail early, writing nothing, unless ``path`` can hold episodes: creatable or writable,
    and ``min_free_bytes`` free on its disk. Creates the folder only when all checks pass.

    Raises ``BagWriteError`` / ``InsufficientSpaceError`` naming the folder.
    """
    path = Path(path).expanduser().absolute()
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    if not existing.is_dir():
        raise BagWriteError(path, f"cannot record here: {existing} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise BagWriteError(path, f"cannot record here: directory {existing} is not writable "
                                  f"({err.strerror or err})") from err
    free = shutil.disk_usage(existing).free
    if free < min_free_bytes:
        raise InsufficientSpaceError(path, f"cannot record here: only {free / 1e9:.2f} GB free on the disk of "
                                           f"{existing}, at least {min_free_bytes / 1e9:.2f} GB wanted (min_free_gb)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BagWriteError(path, f"cannot create the output directory: {err.strerror or err}") from err
    return path


class TeleopRecorder:
    """The recorder node on a transport (see the module docstring)."""

    def __init__(self, transport: Transport, spec: RobotSpec | None = None):
        self.transport = transport
        self.log = transport.logger
        p = transport.declare_parameter
        # -- parameters ----------------------------------------------------------------
        robot_config = str(p("robot_config", "franka_fr3", "robot spec YAML or shipped name"))
        task = str(p("task", "feed_dog", "task YAML or name in config/tasks (or a free-text task name)"))
        output_dir = str(p("output_dir", "demos", "folder that receives episode_NNNN bags"))
        self.operator = str(p("operator", "", "operator name for the episode metadata (default: user)")
                            or _user())
        self.notes = str(p("notes", "", "notes stored with every episode"))
        action_source = str(p("action_source", "command", "command | joint_state | twist | pose"))
        action_topic = str(p("action_topic", "", "action topic (default: per action_source)"))
        gripper_topic = str(p("action_gripper_topic", "", "gripper action topic; '' = spec's (command), none = off"))
        gripper_type = str(p("action_gripper_type", "", "gripper action type (default: spec's)"))
        extra = parse_topic_list(p("extra_topics", "", "more topics to record: 'topic:type, topic:type'"))
        best_effort = parse_topic_list(p("best_effort_topics", "", "topics to read best effort (images always are)"))
        self.episodes = int(p("episodes", 0, "auto mode: record this many episodes, then exit (0 = manual)"))
        self.episode_duration_s = float(p("episode_duration_s", 0.0,
                                          "episode length [s] (auto mode: 0 = the task's; manual: 0 = no limit)"))
        self.reset_robot = as_bool(p("reset_robot", False, "auto mode: publish the reset topic before each episode"))
        self.reset_topic = str(p("reset_topic", RESET_TOPIC, "std_msgs/Float64MultiArray [episode index]"))
        self.reset_settle_s = float(p("reset_settle_s", 1.0, "auto mode: wait after a reset [s]"))
        self.wait_for_topics_s = float(p("wait_for_topics_s", 10.0,
                                         "auto mode: wait this long for every sensor before the first episode"))
        min_free_gb = float(p("min_free_gb", 1.0, "free disk space an episode needs [GB]"))
        self.fsync = as_bool(p("fsync", True, "fsync the bag at every flush (survives power loss)"))
        self.flush_interval_s = float(p("flush_interval_s", 0.5, "flush the bag this often [s]"))
        self.keyboard = as_bool(p("keyboard", True, "single-key control when stdin is a terminal"))
        self.status_period_s = float(p("status_period_s", 5.0, "log the status this often without a terminal [s]"))
        self.late_threshold_s = float(p("late_threshold_s", 0.1, "receive - header stamp above this is 'late' [s]"))
        command_topic = str(p("command_topic", COMMAND_TOPIC, "episode commands (std_msgs/String)"))
        status_topic = str(p("status_topic", STATUS_TOPIC, "recorder status (std_msgs/String, JSON, latched)"))
        self.distro = str(p("distro", "humble", "ROS 2 distro whose message definitions go into the bag"))
        self.max_queue_bytes = int(float(p("max_queue_mb", DEFAULT_MAX_QUEUE_BYTES / (1 << 20),
                                           "writer queue limit [MiB]")) * (1 << 20))

        self.spec = spec if spec is not None else load_spec(robot_config)
        self.task_name, self.task_description, task_duration = _task_info(task)
        if self.episodes < 0:
            raise ValueError(f"parameter episodes: expected >= 0, found {self.episodes}")
        if self.episodes > 0 and self.episode_duration_s <= 0:
            if not task_duration:
                raise ValueError("auto mode (episodes > 0) needs episode_duration_s > 0 (the task gives none)")
            self.episode_duration_s = float(task_duration)
        self.topics: list[RecordedTopic] = recorded_topics(
            self.spec, action_source=action_source, action_topic=action_topic, action_gripper_topic=gripper_topic,
            action_gripper_type=gripper_type, extra_topics=extra, best_effort_topics=best_effort, distro=self.distro)
        self.min_free_bytes = int(min_free_gb * 1e9)
        # Before any subscription: an output folder that cannot hold episodes is an error now.
        self.output_dir = check_output_dir(output_dir, self.min_free_bytes)
        self.action_source = action_source
        self.sensor_topics = [t.topic for t in self.topics if t.role == "sensor"]

        # -- state ---------------------------------------------------------------------
        self.state = "waiting" if self.episodes > 0 else "idle"
        self.episode: RecordingEpisode | None = None
        self.saved: list[Path] = []
        self.discarded = 0
        self.finished = False
        self.exit_code = 0
        self.last_event = ""
        self._commands: deque[str] = deque()
        self._rx_named = False
        self._next_notes: str | None = None
        self._settle_until = 0.0
        self._wait_since: float | None = None  # auto mode: when waiting for the sensors began
        self._last_redraw = self._last_status_pub = self._last_log = self._last_dds_poll = 0.0
        self._lock = threading.RLock()
        self._status_line = StatusLine()
        self._keys = KeyReader(self.command)
        self._keys_on = False

        # -- publishers and subscriptions ----------------------------------------------------
        self._status_pub = transport.create_publisher(status_topic, "std_msgs/msg/String", QOS_LATCHED)
        self._reset_pub = (transport.create_publisher(self.reset_topic, "std_msgs/msg/Float64MultiArray", QOS_DEFAULT)
                           if self.reset_robot else None)
        self.monitors: dict[str, TopicMonitor] = {}
        for rt in self.topics:
            monitor = TopicMonitor(rt)
            sub = transport.create_subscription(rt.topic, rt.type, self._message_callback(rt, monitor), rt.qos,
                                                raw=True)
            monitor.attach_reader(getattr(sub, "reader", None))  # DDS statuses, dds transport only
            self.monitors[rt.topic] = monitor
        transport.create_subscription(command_topic, "std_msgs/msg/String", lambda msg: self.command(str(msg.data)),
                                      QOS_DEFAULT)
        transport.create_timer(_CONTROL_PERIOD_S, self._on_control, group="recorder")

        mode = (f"auto mode: {self.episodes} episode(s) of {self.episode_duration_s:g} s"
                + (f", reset via {self.reset_topic}" if self.reset_robot else "")) if self.episodes else "manual mode"
        self.log.info("recording %s (%s) into %s; %s; control: %s, status: %s", self.spec.name, self.task_name,
                      self.output_dir, mode, command_topic, status_topic)
        for rt in self.topics:
            self.log.info("  %-15s %s [%s] %s", rt.label, rt.topic, rt.type, "best effort" if rt.best_effort
                          else "reliable")
        if self.keyboard:
            self._keys_on = self._keys.start()
            if self._keys_on:
                self._say(logging.INFO, "keys: %s", KEY_HELP)
        self._publish_status()

    # -- receive path ----------------------------------------------------------------------
    def _clock_ns(self) -> Callable[[], int]:
        """The transport clock in integer nanoseconds (exact where the transport has ``now_ns``)."""
        now_ns = getattr(self.transport, "now_ns", None)
        if callable(now_ns):
            return now_ns
        now = self.transport.now
        return lambda: int(now() * 1e9)

    def _message_callback(self, rt: RecordedTopic, monitor: TopicMonitor) -> Callable[[Any], None]:
        clock_ns, topic, stamped = self._clock_ns(), rt.topic, rt.stamped
        late_ns = int(self.late_threshold_s * 1e9)

        def on_message(data: Any) -> None:
            if not self._rx_named:  # once: tell the receive thread apart in top -H / the benchmark
                self._rx_named = True
                set_native_thread_name("hpt-rec-receive")
            t_ns = clock_ns()
            monitor.total += 1
            monitor.last_rx_ns = t_ns
            late = False
            if stamped:
                stamp = header_stamp_ns(data)
                if stamp and t_ns - stamp > late_ns:
                    late = True
                    monitor.late_total += 1
            episode = self.episode
            if episode is not None and episode.put(topic, t_ns, data) and late:
                episode.late[topic] += 1

        return on_message

    # -- commands ----------------------------------------------------------------------------
    def command(self, text: str) -> None:
        """Queue an episode command (thread-safe): start, save, save_failure, discard, restart,
        quit, or 'note <text>'. Runs on the recorder's control timer."""
        self._commands.append(text)

    def _handle(self, text: str, now: float) -> None:
        word, _, rest = text.strip().partition(" ")
        word = word.lower().rstrip(":")
        if word == "note":
            if self.episode is not None:
                self.episode.notes = rest.strip()
            else:
                self._next_notes = rest.strip()
            self._event(f"note set: {rest.strip()!r}")
        elif word == "start":
            if self.episode is not None:
                self._event(f"already recording episode {self.episode.index}", logging.WARNING)
            elif self.state in ("idle", "waiting", "resetting"):
                self._start(now)
            else:
                self._event(f"cannot start while {self.state}", logging.WARNING)
        elif word in ("save", "save_failure"):
            if self.episode is None:
                self._event("not recording: nothing to save", logging.WARNING)
            else:
                self._save(ended_by=word, success=word == "save")
        elif word in ("discard", "restart"):
            if self.episode is None:
                self._event("not recording: nothing to discard", logging.WARNING)
            else:
                self._discard()
                if word == "restart" and self.episodes == 0:
                    self._start(now)  # (auto mode re-records by itself, after a reset)
        elif word == "quit":
            if self.episode is not None:
                self._save(ended_by="quit", success=None)
            self._finish_run("quit")
        else:
            self._event(f"unknown command {text!r}; expected one of {', '.join(COMMANDS)}", logging.WARNING)

    # -- episodes ------------------------------------------------------------------------------
    def _start(self, now: float) -> None:
        index = next_episode_index(self.output_dir)
        path = episode_path(self.output_dir, index)
        silent = [t for t in self.sensor_topics if self.monitors[t].total == 0]
        if silent:
            self._event(f"starting although nothing was received yet on {', '.join(silent)}", logging.WARNING)
        notes = self._next_notes if self._next_notes is not None else self.notes
        metadata: dict[str, Any] = {
            "task": self.task_name,
            "episode_index": index,
            "operator": self.operator,
            "success": None,
            "notes": notes,
            "spec_hash": self.spec.spec_hash,
            "robot": self.spec.name,
            "task_description": self.task_description,
            "action_source": self.action_source,
            "topics_by_role": {rt.topic: rt.role for rt in self.topics},
            "transport": self.transport.kind,
        }
        self._next_notes = None
        try:
            writer = EpisodeWriter(path, {rt.topic: rt.type for rt in self.topics}, metadata,
                                   min_free_bytes=self.min_free_bytes, flush_interval_s=self.flush_interval_s,
                                   fsync=self.fsync, distro=self.distro,
                                   qos={rt.topic: bag_qos(rt) for rt in self.topics})
        except (BagError, OSError) as err:
            self._fatal(f"cannot start episode {index}: {err}")
            return
        episode = RecordingEpisode(writer, index, now, max_queue_bytes=self.max_queue_bytes)
        episode.notes = notes
        for topic, monitor in self.monitors.items():
            monitor.poll_dds()
            episode.lost_at_start[topic] = monitor.lost_total
        self.episode = episode
        self.state = "recording"
        self._event(f"episode {index}: recording -> {path}")

    def _episode_stats(self, episode: RecordingEpisode) -> dict[str, Any]:
        per_topic = {}
        for rt in self.topics:
            monitor = self.monitors[rt.topic]
            monitor.poll_dds()
            per_topic[rt.topic] = {
                "received": int(episode.received[rt.topic]),
                "dropped": int(episode.dropped[rt.topic]),
                "lost": int(monitor.lost_total - episode.lost_at_start.get(rt.topic, monitor.lost_total)),
                "late": int(episode.late[rt.topic]),
                "qos": "best_effort" if rt.best_effort else "reliable",
            }
        return {
            "dropped": sum(v["dropped"] for v in per_topic.values()),
            "lost": sum(v["lost"] for v in per_topic.values()),
            "late": sum(v["late"] for v in per_topic.values()),
            "cpu_fraction": round(episode.cpu_fraction(), 4),
            "max_queued_mb": round(episode.max_queued_bytes / (1 << 20), 2),
            "topics": per_topic,
        }

    def _save(self, *, ended_by: str, success: bool | None, interrupted: bool = False) -> None:
        episode, self.episode = self.episode, None
        if episode is None:
            return
        self.state = "saving"
        episode.stop()
        stats = self._episode_stats(episode)
        extra: dict[str, Any] = {}
        if episode.error is not None:
            extra["write_error"] = f"{type(episode.error).__name__}: {episode.error}"
        try:
            info = episode.writer.close(success=success, notes=episode.notes, ended_by=ended_by,
                                        interrupted=interrupted, recorder=stats, **extra)
        except (BagError, OSError) as err:
            self._fatal(f"episode {episode.index}: closing the bag failed: {err}")
            return
        self.saved.append(info.path)
        verdict = {True: "success", False: "failure", None: "not judged"}[success]
        problems = f", {stats['dropped']} dropped, {stats['lost']} lost, {stats['late']} late"
        self.state = "idle"
        self._event(f"episode {episode.index} saved ({verdict}, {info.duration_s or 0:.1f} s, "
                    f"{sum(info.message_counts.values())} messages{problems}, ended by {ended_by}) -> {info.path}")
        if episode.error is not None:
            self._fatal(f"episode {episode.index}: writing failed, the bag holds what came before: {episode.error}")

    def _discard(self) -> None:
        episode, self.episode = self.episode, None
        if episode is None:
            return
        episode.discard()
        self.discarded += 1
        self.state = "idle"
        self._event(f"episode {episode.index} discarded ({episode.path} deleted)")

    def _finish_run(self, why: str) -> None:
        self.state = "done" if self.exit_code == 0 else "error"
        self.finished = True
        self._event(f"done ({why}): {len(self.saved)} episode(s) saved, {self.discarded} discarded")

    def _fatal(self, text: str) -> None:
        self.exit_code = 1
        self._event(text, logging.ERROR)
        if self.episode is not None:
            self._save(ended_by="error", success=None, interrupted=True)
        self.state = "error"
        self.finished = True
        self._publish_status()

    # -- control timer ----------------------------------------------------------------------------
    def _on_control(self) -> None:
        with self._lock:
            if self.finished:
                return
            now = self.transport.now()
            while self._commands and not self.finished:
                self._handle(self._commands.popleft(), now)
            if self.finished:
                return
            episode = self.episode
            if episode is not None and episode.error is not None:
                self._fatal(f"episode {episode.index}: write failed: {episode.error}")
                return
            if self.episodes > 0:
                self._auto_step(now)
            elif episode is not None and 0 < self.episode_duration_s <= now - episode.start_time:
                self._save(ended_by="duration", success=None)
            self._report(now)

    def _auto_step(self, now: float) -> None:
        if self.state == "waiting":
            if self._wait_since is None:
                self._wait_since = now
            silent = [t for t in self.sensor_topics if self.monitors[t].total == 0]
            if silent and now - self._wait_since < self.wait_for_topics_s:
                return
            if silent:
                self._event(f"no message after {self.wait_for_topics_s:g} s on {', '.join(silent)}; "
                            "recording anyway", logging.WARNING)
            self._begin_reset(now)
        elif self.state == "idle":  # after a save or a discard
            if len(self.saved) >= self.episodes:
                self._finish_run(f"{len(self.saved)} of {self.episodes} episodes")
            else:
                self._begin_reset(now)
        elif self.state == "resetting" and now >= self._settle_until:
            self._start(now)
        elif self.state == "recording" and self.episode is not None:
            if now - self.episode.start_time >= self.episode_duration_s:
                self._save(ended_by="duration", success=None)
                if len(self.saved) >= self.episodes:
                    self._finish_run(f"{len(self.saved)} of {self.episodes} episodes")

    def _begin_reset(self, now: float) -> None:
        self.state = "resetting"
        if self._reset_pub is None:
            self._settle_until = now
            return
        index = next_episode_index(self.output_dir)
        msg = self.transport.new_message("std_msgs/msg/Float64MultiArray")
        from hpt_ros.ros import messages

        messages.fill_float64_multi_array(msg, [float(index)], topic=self.reset_topic)
        self._reset_pub.publish(msg)
        self._settle_until = now + self.reset_settle_s
        self._event(f"reset published on {self.reset_topic} for episode {index}; settling {self.reset_settle_s:g} s")

    # -- status --------------------------------------------------------------------------------------
    def _report(self, now: float) -> None:
        for monitor in self.monitors.values():
            monitor.update_rate(now)
        if now - self._last_dds_poll >= 1.0 or now < self._last_dds_poll:
            for monitor in self.monitors.values():
                monitor.poll_dds()
                self._check_incompatible(monitor)
            self._last_dds_poll = now
        if self._status_line.enabled and (now - self._last_redraw >= _REDRAW_PERIOD_S or now < self._last_redraw):
            self._status_line.show(self.status_text(now))
            self._last_redraw = now
        elif not self._status_line.enabled and self.status_period_s > 0 and (
                now - self._last_log >= self.status_period_s or now < self._last_log):
            self.log.info("%s", self.status_text(now))
            self._last_log = now
        if now - self._last_status_pub >= _STATUS_TOPIC_PERIOD_S or now < self._last_status_pub:
            self._publish_status(now)

    def _check_incompatible(self, monitor: TopicMonitor) -> None:
        if monitor.incompatible_total and not monitor.warned_incompatible:
            monitor.warned_incompatible = True
            rt = monitor.topic
            hint = ("add it to best_effort_topics (a reliable reader does not match a best-effort writer)"
                    if not rt.best_effort else "check the publisher's QoS")
            self._event(f"{rt.topic}: a publisher's QoS is incompatible with this {rt.qos.reliability.value} "
                        f"reader, its messages are NOT recorded: {hint}", logging.ERROR)

    def status_text(self, now: float | None = None) -> str:
        """The one-line status: episode, elapsed time, rates, problems."""
        now = self.transport.now() if now is None else now
        episode = self.episode
        if episode is not None:
            head = f"● REC episode {episode.index:04d} {now - episode.start_time:6.1f} s"
            dropped, late = sum(episode.dropped.values()), sum(episode.late.values())
            lost = sum(m.lost_total - episode.lost_at_start.get(t, m.lost_total) for t, m in self.monitors.items())
        else:
            head = f"{self.state.upper():9s}"
            dropped = 0
            late = sum(m.late_total for m in self.monitors.values())
            lost = sum(m.lost_total for m in self.monitors.values())
        rates = " ".join(f"{m.topic.label} {m.rate_hz:.0f}Hz" for m in self.monitors.values())
        text = (f"{head} | {rates} | dropped {dropped} lost {lost} late {late} | saved {len(self.saved)} "
                f"discarded {self.discarded}")
        if self._keys_on:
            text += " | " + KEY_HELP
        return text

    def status(self, now: float | None = None) -> dict[str, Any]:
        """What ``/hpt_recorder/status`` carries (as JSON)."""
        now = self.transport.now() if now is None else now
        episode = self.episode
        return {
            "state": self.state,
            "episode": episode.index if episode is not None else None,
            "elapsed_s": round(now - episode.start_time, 3) if episode is not None else 0.0,
            "saved": len(self.saved),
            "discarded": self.discarded,
            "last_episode": str(self.saved[-1]) if self.saved else None,
            "output_dir": str(self.output_dir),
            "rates_hz": {t: round(m.rate_hz, 2) for t, m in self.monitors.items()},
            "received": {t: m.total for t, m in self.monitors.items()},
            "dropped": sum(episode.dropped.values()) if episode is not None else 0,
            "lost": {t: m.lost_total for t, m in self.monitors.items()},
            "late": {t: m.late_total for t, m in self.monitors.items()},
            "message": self.last_event,
            "exit_code": self.exit_code,
        }

    def _publish_status(self, now: float | None = None) -> None:
        try:
            msg = self.transport.new_message("std_msgs/msg/String")
            msg.data = json.dumps(self.status(now))
            self._status_pub.publish(msg)
        except Exception as exc:  # noqa: BLE001 - the status topic must never stop a recording
            self.log.debug("status not published: %s", exc)
        self._last_status_pub = self.transport.now() if now is None else now

    def _event(self, text: str, level: int = logging.INFO) -> None:
        self.last_event = text
        self._say(level, "%s", text)
        self._publish_status()

    def _say(self, level: int, fmt: str, *args: Any) -> None:
        self._status_line.clear()
        self.log.log(level, fmt, *args)

    # -- end ------------------------------------------------------------------------------------------
    def close(self, reason: str | None = None) -> int:
        """Stop keys, close an open episode (saved; ``interrupted`` when ``reason`` is a signal);
        returns the exit code. Call after spinning stopped."""
        with self._lock:
            self._keys.stop()
            if self.episode is not None:  # stopped from outside while recording: keep it, say so
                self._save(ended_by=reason or "shutdown", success=None, interrupted=True)
            if not self.finished:
                self._finish_run(reason or "shutdown")
            self._status_line.clear()
            return self.exit_code


# -- helpers --------------------------------------------------------------------------------------------

def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"



def _task_info(task: str) -> tuple[str, str, float | None]:
    """(task name, description, episode_duration_s) from a task YAML, or the text itself as the name."""
    from hpt_ros.nodes.fake_robot import load_task

    try:
        data = load_task(task)
    except FileNotFoundError:
        return task, "", None
    duration = data.get("episode_duration_s")
    return (str(data.get("task") or task), str(data.get("description") or ""),
            float(duration) if isinstance(duration, (int, float)) else None)


# -- entry points ------------------------------------------------------------------------------------------

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
