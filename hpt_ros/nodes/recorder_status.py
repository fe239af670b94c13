"""The teleop recorder's status: the one-line display (terminal or log), the latched JSON
status topic, and event messages. A mixin of :class:`~hpt_ros.nodes.recorder_node.TeleopRecorder`:
it reads the node's state (episode, monitors, counters) and owns none of it."""

from __future__ import annotations

import json
import logging
from typing import Any

from .recorder_console import KEY_HELP
from .recorder_topics import TopicMonitor

__all__ = ["RecorderStatus"]

_REDRAW_PERIOD_S = 0.25
_STATUS_TOPIC_PERIOD_S = 1.0


class RecorderStatus:
    """Status reporting for the recorder node (the attributes it reads are set by the node)."""

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
