"""The teleop recorder node on a transport: parameters, raw subscriptions, episode commands,
episodes (start, save, discard) and the control timer. What it records and how is told in
:mod:`hpt_ros.nodes.teleop_recorder`, its entry point."""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hpt_ros.data import BagError, EpisodeWriter, episode_path, next_episode_index
from hpt_ros.ros.transport import QOS_DEFAULT, QOS_LATCHED, Transport
from hpt_ros.spec import RobotSpec, load_spec

from .recorder_console import KEY_HELP, KeyReader, StatusLine
from .recorder_episode import DEFAULT_MAX_QUEUE_BYTES, RecordingEpisode, set_native_thread_name
from .recorder_setup import check_output_dir, task_info, user_name
from .recorder_status import RecorderStatus
from .recorder_topics import RecordedTopic, TopicMonitor, bag_qos, header_stamp_ns, parse_topic_list, recorded_topics
from .runner import as_bool

__all__ = ["COMMANDS", "COMMAND_TOPIC", "RESET_TOPIC", "STATUS_TOPIC", "TeleopRecorder"]

COMMAND_TOPIC = "/hpt_recorder/command"
STATUS_TOPIC = "/hpt_recorder/status"
RESET_TOPIC = "/fake_robot/reset"
COMMANDS = ("start", "save", "save_failure", "discard", "restart", "quit", "note")
_CONTROL_PERIOD_S = 0.05


class TeleopRecorder(RecorderStatus):
    """The recorder node on a transport (see :mod:`hpt_ros.nodes.teleop_recorder`)."""

    def __init__(self, transport: Transport, spec: RobotSpec | None = None):
        self.transport = transport
        self.log = transport.logger
        p = transport.declare_parameter
        # -- parameters ----------------------------------------------------------------
        robot_config = str(p("robot_config", "franka_fr3", "robot spec YAML or shipped name"))
        task = str(p("task", "feed_dog", "task YAML or name in config/tasks (or a free-text task name)"))
        output_dir = str(p("output_dir", "demos", "folder that receives episode_NNNN bags"))
        self.operator = str(p("operator", "", "operator name for the episode metadata (default: user)")
                            or user_name())
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
        self.task_name, self.task_description, task_duration = task_info(task)
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
        from hpt_ros.msgs import messages

        messages.fill_float64_multi_array(msg, [float(index)], topic=self.reset_topic)
        self._reset_pub.publish(msg)
        self._settle_until = now + self.reset_settle_s
        self._event(f"reset published on {self.reset_topic} for episode {index}; settling {self.reset_settle_s:g} s")

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
