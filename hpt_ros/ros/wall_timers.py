"""Periodic callbacks on the wall clock, one thread per callback group.

Used by the ``dds`` transport. Each group (``"control"`` by default) gets its own thread
while the transport spins, so a slow callback (policy inference) delays only the other
timers of its group — never message callbacks or timers of another group. Within a group
callbacks never overlap (like rclpy's MutuallyExclusiveCallbackGroup).

Scheduling follows rclpy: the first call is one period after creation; a call that comes
late does not cause a burst of catch-up calls, missed periods are skipped.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable

from .transport import Timer

__all__ = ["TimerGroups", "WallTimer"]


class WallTimer(Timer):
    """A periodic callback; ``cancel()`` stops it (safe from any thread, also its own callback)."""

    def __init__(self, owner: TimerGroups, period_s: float, callback: Callable[[], None], group: str):
        self.period_s = float(period_s)
        self.callback = callback
        self.group = group
        self.next_due = time.monotonic() + self.period_s
        self.cancelled = False
        self._owner = owner

    def cancel(self) -> None:
        self.cancelled = True
        self._owner.remove(self)

    def advance(self, now: float) -> None:
        """Schedule the next call after ``now``, skipping periods that were missed."""
        self.next_due += self.period_s
        if self.next_due <= now:
            missed = math.floor((now - self.next_due) / self.period_s) + 1
            self.next_due += missed * self.period_s


class TimerGroups:
    """Timers by group, and the threads that run them while ``running``.

    ``on_error(exc)`` receives an exception raised by a callback (the transport stops
    spinning and re-raises it, as rclpy does).
    """

    def __init__(self, name_prefix: str, on_error: Callable[[BaseException], None]):
        self._name_prefix = name_prefix
        self._on_error = on_error
        self._cond = threading.Condition()
        self._timers: list[WallTimer] = []
        self._threads: dict[str, threading.Thread] = {}
        self._running = False

    # -- timers -----------------------------------------------------------
    def add(self, period_s: float, callback: Callable[[], None], group: str) -> WallTimer:
        if not (period_s > 0 and math.isfinite(period_s)):
            raise ValueError(f"timer period must be a positive number of seconds, got {period_s!r}")
        timer = WallTimer(self, period_s, callback, group)
        with self._cond:
            self._timers.append(timer)
            if self._running and group not in self._threads:
                self._start_thread(group)
            self._cond.notify_all()
        return timer

    def remove(self, timer: WallTimer) -> None:
        with self._cond:
            if timer in self._timers:
                self._timers.remove(timer)
            self._cond.notify_all()

    # -- threads ----------------------------------------------------------
    @property
    def threads(self) -> list[threading.Thread]:
        with self._cond:
            return list(self._threads.values())

    def start(self) -> None:
        with self._cond:
            self._running = True
            for group in {t.group for t in self._timers}:
                if group not in self._threads:
                    self._start_thread(group)

    def stop(self, join_timeout_s: float = 5.0) -> None:
        with self._cond:
            self._running = False
            self._cond.notify_all()
            threads = list(self._threads.values())
        current = threading.current_thread()
        for thread in threads:
            if thread is not current:
                thread.join(join_timeout_s)
        with self._cond:
            self._threads = {g: t for g, t in self._threads.items() if t.is_alive() and t is not current}

    def _start_thread(self, group: str) -> None:
        thread = threading.Thread(target=self._run_group, args=(group,), name=f"{self._name_prefix}-timers-{group}",
                                  daemon=True)
        self._threads[group] = thread
        thread.start()

    def _run_group(self, group: str) -> None:
        while True:
            with self._cond:
                if not self._running:
                    return
                due = [t for t in self._timers if t.group == group and not t.cancelled]
                now = time.monotonic()
                timer = min(due, key=lambda t: t.next_due) if due else None
                if timer is None or timer.next_due > now:
                    wait_s = 0.1 if timer is None else min(timer.next_due - now, 0.1)
                    self._cond.wait(wait_s)
                    continue
                timer.advance(now)
            try:
                timer.callback()
            except BaseException as exc:  # noqa: BLE001 - handed to spin(), which re-raises it
                self._on_error(exc)
                return
