"""The ``replay`` transport: the package's nodes on a simulated clock, driven by bags or by themselves.

``ReplayTransport`` implements :class:`~hpt_ros.ros.transport.Transport` without any
middleware and without threads. Everything happens on one simulated clock:

* **Clock.** ``now()`` is simulated time in seconds, kept internally as integer
  nanoseconds (no drift). With bag input it is the bag's time (plus ``time_offset``),
  exactly what a node sees live with ``use_sim_time:=true`` while
  ``ros2 bag play --clock`` publishes ``/clock``. The clock starts at ``start_time``, or
  (if none was given) at the start of the first bag fed, or at 0.0 when ``run`` begins
  with no bag; it only moves forward, event by event.
* **Timers** fire on that clock in time order: the first call one period after the timer
  was created (as rclpy does), then every period on an integer-nanosecond grid
  (``period_ns = round(period_s * 1e9)``). A timer created before the clock has started
  is anchored at the start. Callback groups are accepted and ignored: callbacks run inline,
  one at a time, so a slow callback (policy inference) costs wall time but no simulated
  time. This is a perfect executor: every message is delivered, no tick is ever late.
* **Bags.** ``feed_bag(reader, topics, time_offset)`` merges a bag's messages with the
  timers by timestamp (the bag's receive timestamps, as ``ros2 bag play`` uses them).
  Messages are read lazily, and decoded only for topics that have a subscriber: into the
  package's IDL structs (:mod:`hpt_ros.msgs.idl`, the fast numpy codec) when the type is
  one of them, else into ``rosbags`` dataclasses; both carry ROS 2 field names, so the
  same conversion code serves them. ``raw=True`` subscribers get the CDR bytes.
  A subscriber whose type differs from the bag's raises a ``TransportError`` naming the
  bag, the topic and both types (live, ROS 2 would silently not connect them).
* **Ordering.** Events run in order of time; at one instant, messages (from bags and from
  ``publish``, in arrival order) come before timers (in creation order), so a control
  tick at time ``t`` sees every message stamped at or before ``t``.
* **Pub/sub in process.** ``publish`` delivers to every local subscriber of the topic
  (of this transport and of its siblings, see below) at the current simulated time,
  right after the running callback returns; ``TRANSIENT_LOCAL`` publishers keep their
  last ``depth`` messages for late ``TRANSIENT_LOCAL`` subscribers. Each publish is
  recorded in :attr:`ReplayTransport.published` as ``Published(topic, time, msg)``
  (restrict it with ``record=`` to save memory), which is how the replay evaluation
  reads the commands a policy would have sent.

**Without a bag** it is an in-process simulated-time transport: build the fake robot,
a scripted teleoperator and the policy node on sibling transports (``sibling()``: same
clock and same topics, their own node names and parameters) and ``run(until=...)`` the
closed loop deterministically and as fast as the computer allows, e.g.::

    world = ReplayTransport("fake_robot", {"width": 128, "height": 96}, start_time=0.0)
    FakeRobot(world, spec)
    PolicyNode(world.sibling("policy_node", {"auto_enable": True}), spec, engine)
    world.run(until=10.0)   # 10 s of simulated time

``run`` / ``spin`` re-raise the first exception a callback raises. ``stats`` says where
the wall time went (bag reading, decoding, each topic's and each timer's callbacks).
"""

from __future__ import annotations

import collections
import heapq
import math
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from hpt_ros.msgs.names import normalize_type_name

from .replay_bags import (
    NS as _NS,
    BagFeed,
    ReplayStats,
    decode_bag_message,
    deserialize_published,
    msg_class,
    same_type,
    serialize_for_raw,
)
from .replay_world import MESSAGE, Published, ReplayPublisher, ReplaySubscription, ReplayTimer, World
from .transport import (
    QOS_DEFAULT,
    Callback,
    Durability,
    Publisher,
    QoSProfile,
    Subscription,
    Timer,
    Transport,
    TransportError,
    validate_topic_name,
)

__all__ = ["BagFeed", "Published", "ReplayStats", "ReplayTransport", "decode_bag_message"]

class ReplayTransport(Transport):
    """Simulated clock, inline timers, in-process pub/sub and bag input (see the module docstring).

    Args:
        node_name: the node's name.
        parameters: parameter overrides (as ``--ros-args -p`` would give).
        start_time: simulated time [s] the clock starts at; None: at the first bag's start
            (or 0.0 when ``run`` begins with no bag).
        start_ns: the same in integer nanoseconds (exact at epoch times, where a float
            second has ~0.2 us resolution); wins over ``start_time``.
        record: which publishes to keep in ``published``: True (all, the default), False
            (none) or a collection of topics.
        distro: ROS 2 distribution whose ``rosbags`` types serve ``new_message`` for types
            without an IDL struct.
    """

    kind = "replay"

    def __init__(self, node_name: str = "replay", parameters: dict[str, Any] | None = None, *,
                 start_time: float | None = None, start_ns: int | None = None,
                 record: bool | Iterable[str] = True, distro: str = "humble",
                 _world: World | None = None):  # fmt: skip
        super().__init__(node_name, parameters)
        if _world is None:
            if start_ns is None and start_time is not None:
                start_ns = _to_ns(start_time, "start_time")
            _world = World(None if start_ns is None else int(start_ns), record)
        self._world = _world
        self.distro = distro
        self._subscriptions: list[ReplaySubscription] = []
        self._timers: list[ReplayTimer] = []
        self._shut_down = False

    def sibling(self, node_name: str, parameters: dict[str, Any] | None = None) -> ReplayTransport:
        """Another node on the same clock and topics (its own name, parameters, subscriptions)."""
        return ReplayTransport(node_name, parameters, distro=self.distro, _world=self._world)

    # -- what replay adds to the interface -------------------------------------------------
    @property
    def published(self) -> list[Published]:
        """Every recorded ``publish`` of this transport and its siblings, in order."""
        return self._world.published

    def published_on(self, topic: str) -> list[Published]:
        """The recorded publishes on ``topic``, in order."""
        return [p for p in self._world.published if p.topic == topic]

    @property
    def stats(self) -> ReplayStats:
        return self._world.stats

    @property
    def feeds(self) -> list[BagFeed]:
        return list(self._world.feeds)

    def feed_bag(self, reader: Any, topics: Iterable[str] | None = None, time_offset: float = 0.0, *,
                 offset_ns: int | None = None) -> BagFeed:
        """Merge the messages of a bag into the replay.

        ``reader``: a :class:`hpt_ros.data.BagReader` (left open; close it yourself) or a
        bag path (opened here with ``open_bag`` and closed when its messages are used up).
        ``topics``: the topics to feed (default: all; one that is not in the bag raises
        ``BagTopicError`` naming it). ``time_offset`` [s] is added to every timestamp: 0.0
        keeps bag time (``use_sim_time`` semantics). A bag that would start before the
        current simulated time raises ``TransportError`` (give an offset). ``offset_ns``: the
        offset in integer nanoseconds (exact), instead of ``time_offset``.
        """
        self._check_open("feed_bag")
        owned = False
        if isinstance(reader, (str, Path)):
            from hpt_ros.data import open_bag

            reader, owned = open_bag(reader), True
        try:
            wanted = sorted(reader.topics) if topics is None else list(dict.fromkeys(topics))
            known = reader.topics
            missing = [t for t in wanted if t not in known]
            if missing:
                from hpt_ros.data.errors import BagTopicError

                raise BagTopicError(reader.path, f"not in the bag; topics: {sorted(known)}", topic=missing[0])
            offset = int(offset_ns) if offset_ns is not None else _to_ns(time_offset, "time_offset")
            feed = BagFeed(reader, wanted, offset, owned)
            feed.owner = self
            world = self._world
            if world.started and reader.message_count and feed.start_ns < world.now_ns:
                raise TransportError(
                    f"{feed.path}: the bag starts at {feed.start_time:.9f} s, before the replay clock "
                    f"({world.now_ns / _NS:.9f} s); pass time_offset={(world.now_ns - feed.start_ns) / _NS:.9f} "
                    "or more, or feed it before the clock starts")  # fmt: skip
        except BaseException:
            if owned:
                reader.close()
            raise
        if not world.started and reader.message_count:
            world.start(feed.start_ns)
        world.feeds.append(feed)
        self._push_next(feed)
        return feed

    def run(self, until: float | None = None, *, until_ns: int | None = None,
            stop: Callable[[], bool] | None = None) -> float:
        """Run events in time order; returns the simulated time reached [s].

        Stops after the last event at or before ``until`` [s] (the clock then reads
        ``until``), when ``stop()`` returns True after an event, or when a callback calls
        ``shutdown()``. ``until_ns`` gives the end in integer nanoseconds instead. Neither:
        the end of the bags fed, their last message included (an error without bags and
        without ``stop``: the timers would run forever). A callback's exception stops the
        run and is raised here.
        """
        world = self._world
        self._check_open("run")
        if world.running is not None:
            raise TransportError(f"node {self.node_name!r}: the replay is already running (called from a callback?)")
        if until_ns is not None:
            end_ns: int | None = int(until_ns)
        elif until is not None:
            end_ns = _to_ns(until, "until")
        elif world.feeds:
            end_ns = max(f.end_ns for f in world.feeds)
        elif stop is not None:
            end_ns = None
        else:
            raise TransportError(f"node {self.node_name!r}: a replay with no bag and no end would run forever: "
                                 "pass until= (or spin(duration_s=...)), stop=, or feed a bag")  # fmt: skip
        if not world.started:
            world.start(0)
        world.running = self
        world.stop_requested = False
        heap = world.heap
        start = time.perf_counter()
        stopped = False
        try:
            while heap and not world.stop_requested:
                t_ns = heap[0][0]
                if end_ns is not None and t_ns > end_ns:
                    break
                _, _, _, action = heapq.heappop(heap)
                world.now_ns = max(world.now_ns, t_ns)
                action()
                if stop is not None and stop():
                    stopped = True
                    break
            if end_ns is not None and not stopped and not world.stop_requested and end_ns > world.now_ns:
                world.now_ns = end_ns
        finally:
            world.running = None
            world.stats.run_s += time.perf_counter() - start
        return world.now_ns / _NS

    # -- messages ------------------------------------------------------------------------------
    def new_message(self, msg_type: str) -> Any:
        """A default IDL struct of ``msg_type``; a ``rosbags`` dataclass for types without one."""
        cls = msg_class(msg_type)
        if cls is not None:
            return cls()
        from hpt_ros.data.typestores import distro_typestore

        from hpt_ros.msgs._flavours import default_instance

        store = distro_typestore(self.distro)
        name = normalize_type_name(msg_type)
        if name not in store.types:
            raise TransportError(f"<new_message>: unknown message type {msg_type!r} (no IDL struct, not in ROS 2 "
                                 f"{self.distro})")  # fmt: skip
        return default_instance(store.types[name])

    # -- graph ---------------------------------------------------------------------------------
    def create_publisher(self, topic: str, msg_type: str, qos: QoSProfile = QOS_DEFAULT) -> Publisher:
        self._check_open(topic)
        validate_topic_name(topic)
        return ReplayPublisher(self, topic, normalize_type_name(msg_type), qos)

    def create_subscription(self, topic: str, msg_type: str, callback: Callback, qos: QoSProfile = QOS_DEFAULT, *,
                            raw: bool = False) -> Subscription:
        self._check_open(topic)
        validate_topic_name(topic)
        world = self._world
        sub = ReplaySubscription(self, topic, normalize_type_name(msg_type), callback, qos, raw)
        world.subscriptions[topic].append(sub)
        self._subscriptions.append(sub)
        latched = world.latched.get(topic)
        if latched and qos.durability is Durability.TRANSIENT_LOCAL:
            for msg_type_pub, msg in list(latched):
                self._check_type(sub, msg_type_pub, "a TRANSIENT_LOCAL publisher")
                payload = self._payload(sub, msg, msg_type_pub)
                # now (or first thing once the clock starts)
                world.push(world.now_ns or 0, MESSAGE, lambda s=sub, p=payload: world.deliver(s, p))
        return sub

    def create_timer(self, period_s: float, callback: Callable[[], None], *, group: str = "control") -> Timer:
        self._check_open("<timer>")
        if not (isinstance(period_s, (int, float)) and math.isfinite(period_s) and period_s > 0):
            raise ValueError(f"timer period must be a positive number of seconds, got {period_s!r}")
        timer = ReplayTimer(self, max(1, round(float(period_s) * _NS)), callback, group)
        world = self._world
        world.timer_count += 1
        timer.order = world.timer_count
        world.timers.add(timer)
        self._timers.append(timer)
        if world.started:
            world.schedule_timer(timer, world.now_ns + timer.period_ns)
        else:
            world.pending_timers.append(timer)
        return timer

    # -- clock ---------------------------------------------------------------------------------
    def now(self) -> float:
        """Simulated seconds (0.0 before the clock has started)."""
        now_ns = self._world.now_ns
        return 0.0 if now_ns is None else now_ns / _NS

    def now_ns(self) -> int:
        """Simulated time in integer nanoseconds (0 before the clock has started)."""
        return self._world.now_ns or 0

    # -- life cycle ------------------------------------------------------------------------------
    def spin(self, duration_s: float | None = None, until: Callable[[], bool] | None = None) -> None:
        """``run`` for ``duration_s`` simulated seconds, until ``until()``, or to the end of the bags."""
        if self._shut_down:
            return
        end = None
        if duration_s is not None:
            if not self._world.started:
                self._world.start(0)
            end = self.now() + float(duration_s)
        self.run(end, stop=until)

    def shutdown(self) -> None:
        """Remove this node's subscriptions and timers; a running replay stops. Idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        world = self._world
        for sub in self._subscriptions:
            world.remove_subscription(sub)
        for timer in self._timers:
            timer.cancel()
        for feed in world.feeds:
            if feed.owner is self:
                feed.close()  # bags opened here are closed; a caller's reader stays open
        self._subscriptions.clear()
        self._timers.clear()
        if world.running is not None:
            world.stop_requested = True

    @property
    def is_shut_down(self) -> bool:
        return self._shut_down

    # -- internals -----------------------------------------------------------------------------
    def _check_open(self, what: str) -> None:
        if self._shut_down:
            raise TransportError(f"{what}: transport of node {self.node_name!r} is shut down")

    def _check_type(self, sub: ReplaySubscription, msg_type: str, source: str) -> None:
        if not same_type(sub.msg_type, msg_type):
            raise TransportError(
                f"{source}: topic {sub.topic!r} carries {normalize_type_name(msg_type)}, but node "
                f"{sub.transport.node_name!r} subscribes to it with type {sub.msg_type}")  # fmt: skip

    def _payload(self, sub: ReplaySubscription, msg: Any, msg_type: str) -> Any:
        """What ``sub``'s callback receives for a published ``msg``: the message, or CDR bytes."""
        is_bytes = isinstance(msg, (bytes, bytearray, memoryview))
        if sub.raw:
            return bytes(msg) if is_bytes else serialize_for_raw(msg, msg_type, self.distro, sub.topic)
        if is_bytes:
            return deserialize_published(bytes(msg), msg_type, self.distro, sub.topic)
        return msg

    def _publish(self, pub: ReplayPublisher, msg: Any) -> None:
        if self._shut_down:
            raise TransportError(f"{pub.topic}: cannot publish, transport {self.node_name!r} is shut down")
        world = self._world
        now_ns = world.now_ns or 0
        world.stats.publishes += 1
        if world.recording(pub.topic):
            world.published.append(Published(pub.topic, now_ns / _NS, msg))
        if pub.qos.durability is Durability.TRANSIENT_LOCAL:
            kept = world.latched.get(pub.topic)
            if kept is None or kept.maxlen != max(1, pub.qos.depth):
                kept = world.latched[pub.topic] = collections.deque(kept or (), maxlen=max(1, pub.qos.depth))
            kept.append((pub.msg_type, msg))
        for sub in list(world.subscriptions.get(pub.topic, ())):
            self._check_type(sub, pub.msg_type, f"node {self.node_name!r} publishing")
            payload = self._payload(sub, msg, pub.msg_type)
            world.push(now_ns, MESSAGE, lambda s=sub, p=payload: world.deliver(s, p))

    def _push_next(self, feed: BagFeed) -> None:
        world = self._world
        item = feed.next_message(world.stats)
        if item is None:
            return
        t_ns = int(item.timestamp_ns) + feed.offset_ns
        world.push(t_ns, MESSAGE, lambda: self._deliver_bag(feed, item))

    def _deliver_bag(self, feed: BagFeed, item: Any) -> None:
        world = self._world
        feed.delivered += 1
        world.stats.bag_messages += 1
        topic, msgtype, raw = item.topic, item.msgtype, item.rawdata
        # the next message first: a callback that raises must not lose the bag's place
        self._push_next(feed)
        subs = [s for s in world.subscriptions.get(topic, ()) if s.active]
        if not subs:
            return
        decoded: Any = None
        for sub in subs:
            key = (id(sub), topic)
            if key not in feed._checked:
                if not same_type(sub.msg_type, msgtype):
                    raise TransportError(
                        f"{feed.path}: topic {topic!r} has type {normalize_type_name(msgtype)} in the bag, but "
                        f"node {sub.transport.node_name!r} subscribes to it with type {sub.msg_type}")  # fmt: skip
                feed._checked.add(key)
            if sub.raw:
                world.deliver(sub, bytes(raw))
                continue
            if decoded is None:
                start = time.perf_counter()
                try:
                    decoded = decode_bag_message(feed.reader, topic, msgtype, raw)
                finally:
                    world.stats.decode_s += time.perf_counter() - start
            world.deliver(sub, decoded)


def _to_ns(seconds: float, what: str) -> int:
    if isinstance(seconds, bool) or not isinstance(seconds, (int, float)) or not math.isfinite(seconds):
        raise ValueError(f"{what} must be a finite number of seconds, got {seconds!r}")
    if isinstance(seconds, int):
        return seconds * _NS
    whole = math.floor(seconds)
    return whole * _NS + round((seconds - whole) * _NS)
