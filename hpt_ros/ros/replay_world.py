"""The replay transport's graph: its publishers, subscriptions and timers, and the world that
sibling transports share (the simulated clock, the event queue, the topics)."""

from __future__ import annotations

import collections
import heapq
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any, NamedTuple

from .replay_bags import BagFeed, ReplayStats
from .transport import Callback, Publisher, QoSProfile, Subscription, Timer, validate_topic_name

if TYPE_CHECKING:
    from .replay import ReplayTransport

__all__ = ["MESSAGE", "TIMER", "Published", "ReplayPublisher", "ReplaySubscription", "ReplayTimer", "World"]

# event kinds: the order of events at the same instant
MESSAGE, TIMER = 0, 1


class Published(NamedTuple):
    """One ``publish`` call: topic, simulated time [s], the message as published."""

    topic: str
    time: float
    msg: Any


# -- graph entities ----------------------------------------------------------------------------

class ReplaySubscription(Subscription):
    def __init__(self, transport: ReplayTransport, topic: str, msg_type: str, callback: Callback,
                 qos: QoSProfile, raw: bool):  # fmt: skip
        self.topic = topic
        self.msg_type = msg_type
        self.callback = callback
        self.qos = qos
        self.raw = raw
        self.transport = transport
        self.active = True
        self.stats_key = f"topic {topic}"

    def destroy(self) -> None:
        self.transport._world.remove_subscription(self)


class ReplayPublisher(Publisher):
    def __init__(self, transport: ReplayTransport, topic: str, msg_type: str, qos: QoSProfile):
        self.topic = topic
        self.msg_type = msg_type
        self.qos = qos
        self._transport = transport

    def publish(self, msg: Any) -> None:
        """Publish a message (IDL struct, rosbags dataclass, rclpy message) or CDR bytes."""
        self._transport._publish(self, msg)


class ReplayTimer(Timer):
    def __init__(self, transport: ReplayTransport, period_ns: int, callback: Callable[[], None], group: str):
        self.period_ns = period_ns
        self.callback = callback
        self.group = group
        self.transport = transport
        self.next_ns: int | None = None
        self.order = 0  # creation order among the world's timers
        self.cancelled = False
        self.stats_key = f"timer {getattr(callback, '__qualname__', None) or repr(callback)}"

    def cancel(self) -> None:
        self.cancelled = True
        self.transport._world.timers.discard(self)


# -- the shared world: clock, event queue, topics ----------------------------------------------------

class World:
    """What sibling transports share: the clock, the event queue, the subscribers."""

    def __init__(self, start_ns: int | None, record: bool | Iterable[str]):
        self.now_ns = start_ns
        self.heap: list[tuple[int, int, int, Callable[[], None]]] = []
        self.seq = 0
        self.timer_count = 0
        self.subscriptions: dict[str, list[ReplaySubscription]] = collections.defaultdict(list)
        self.timers: set[ReplayTimer] = set()
        self.pending_timers: list[ReplayTimer] = []
        self.latched: dict[str, collections.deque] = {}
        self.feeds: list[BagFeed] = []
        self.published: list[Published] = []
        self.record_all = record is True
        self.record_topics = set() if isinstance(record, bool) else {validate_topic_name(t) for t in record}
        self.stats = ReplayStats()
        self.running: ReplayTransport | None = None
        self.stop_requested = False

    # -- clock -------------------------------------------------------------------
    @property
    def started(self) -> bool:
        return self.now_ns is not None

    def start(self, start_ns: int) -> None:
        """Start the clock at ``start_ns`` and anchor timers created before."""
        if self.now_ns is not None:
            return
        self.now_ns = int(start_ns)
        pending, self.pending_timers = self.pending_timers, []
        for timer in pending:
            if not timer.cancelled:
                self.schedule_timer(timer, self.now_ns + timer.period_ns)

    # -- events --------------------------------------------------------------------
    def push(self, t_ns: int, kind: int, action: Callable[[], None], order: int | None = None) -> None:
        """Queue ``action`` at ``t_ns``; ties run by kind, then ``order`` (default: arrival)."""
        self.seq += 1
        heapq.heappush(self.heap, (int(t_ns), kind, self.seq if order is None else order, action))

    def schedule_timer(self, timer: ReplayTimer, due_ns: int) -> None:
        timer.next_ns = due_ns
        # timers due at the same instant run in creation order
        self.push(due_ns, TIMER, lambda: self.fire_timer(timer, due_ns), order=timer.order)

    def fire_timer(self, timer: ReplayTimer, due_ns: int) -> None:
        if timer.cancelled or timer.next_ns != due_ns or timer not in self.timers:
            return
        self.schedule_timer(timer, due_ns + timer.period_ns)  # first, so the callback may cancel it
        self.stats.timer_calls += 1
        start = time.perf_counter()
        try:
            timer.callback()
        finally:
            self.stats.add(timer.stats_key, time.perf_counter() - start)

    def deliver(self, sub: ReplaySubscription, msg: Any) -> None:
        if not sub.active:
            return
        self.stats.deliveries += 1
        start = time.perf_counter()
        try:
            sub.callback(msg)
        finally:
            self.stats.add(sub.stats_key, time.perf_counter() - start)

    def remove_subscription(self, sub: ReplaySubscription) -> None:
        sub.active = False
        subs = self.subscriptions.get(sub.topic)
        if subs and sub in subs:
            subs.remove(sub)

    def recording(self, topic: str) -> bool:
        return self.record_all or topic in self.record_topics
