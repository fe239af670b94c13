"""The ``dds`` transport: ROS 2 on the wire through pure-pip Cyclone DDS, no ROS 2 install.

Wire compatibility with ROS 2 (rmw_cyclonedds_cpp; Fast DDS usually too):

* topic ``/x`` is the DDS topic ``rt/x``; types carry ROS 2's DDS names
  (``sensor_msgs::msg::dds_::Image_``, see :mod:`hpt_ros.msgs.idl`);
* data representation XCDR1 (plain CDR, little endian), bytes identical to ROS 2's;
* QoS set explicitly from :class:`~hpt_ros.ros.transport.QoSProfile`: reliability,
  keep-last depth, durability; the domain id comes from ``ROS_DOMAIN_ID`` (default 0);
* Cyclone is configured through ``CYCLONEDDS_URI``; if unset, the package's loopback-only
  configuration is used; the transport creates its domain with that configuration plus
  the settings Fast DDS 3 peers need (:func:`hpt_ros.ros.dds_config.transport_config`).

Threading (while :meth:`DdsTransport.spin` runs):

* one **message thread** waits on a DDS WaitSet and runs every subscription callback, in
  arrival order per topic; callbacks never run concurrently with each other;
* one **timer thread per group** (``create_timer(..., group="control")`` by default) runs
  that group's timers on the wall clock (``time.time()``; simulated time is the replay
  transport's job). Heavy work in a control timer never blocks message callbacks; share
  data between the two through simple assignments or a lock;
* the calling thread waits for ``duration_s`` / ``until()`` / shutdown / Ctrl-C. An
  exception raised by a callback stops spinning and is re-raised by ``spin()``.
  Outside ``spin()`` no callback runs (samples wait in the reader history).

``publish`` may be called from any thread. Messages are decoded with the numpy codec of
:mod:`hpt_ros.msgs.idl.cdr`; ``raw=True`` subscriptions receive the CDR bytes as sent
(encapsulation header included, trailing padding removed) for recording, and keep a
reader history of at least :data:`RAW_MIN_DEPTH` samples so bursts are not dropped.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from typing import Any

from cyclonedds.core import InstanceState, Policy, Qos, ReadCondition, SampleState, ViewState, WaitSet
from cyclonedds.domain import Domain, DomainParticipant
from cyclonedds.pub import DataWriter
from cyclonedds.sub import DataReader
from cyclonedds.topic import Topic
from cyclonedds.util import duration

from hpt_ros.msgs.idl import cdr
from hpt_ros.msgs.idl.registry import MESSAGE_TYPES
from hpt_ros.msgs.names import dds_topic_name, normalize_type_name

from ._dds_binding import delete_entities, raw_take, raw_write
from .dds_config import transport_config
from .transport import (
    QOS_DEFAULT,
    RAW_MIN_DEPTH,
    Callback,
    Durability,
    Publisher,
    QoSProfile,
    Reliability,
    Subscription,
    Timer,
    Transport,
    TransportError,
    validate_topic_name,
)
from .wall_timers import TimerGroups

__all__ = ["DdsTransport", "RAW_MIN_DEPTH", "deserialize", "domain_id_from_env", "dds_qos", "dds_topic_name",
           "serialize"]

_TAKE_BATCH = 256
_ANY_STATE = SampleState.Any | ViewState.Any | InstanceState.Any
_WAIT_NS = duration(milliseconds=100)


# domain id -> [Domain, number of transports using it]; a Cyclone domain exists once per process
_DOMAINS: dict[int, list[Any]] = {}
_DOMAINS_LOCK = threading.Lock()


def _acquire_domain(domain_id: int) -> None:
    with _DOMAINS_LOCK:
        entry = _DOMAINS.get(domain_id)
        if entry is None:
            try:
                entry = [Domain(domain_id, transport_config()), 0]
            except Exception:  # noqa: BLE001 - the domain exists already (made outside this module)
                entry = [None, 0]
            _DOMAINS[domain_id] = entry
        entry[1] += 1


def _release_domain(domain_id: int) -> None:
    with _DOMAINS_LOCK:
        entry = _DOMAINS.get(domain_id)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] <= 0:
            del _DOMAINS[domain_id]
            if entry[0] is not None:
                delete_entities(entry[0])


def domain_id_from_env() -> int:
    """``ROS_DOMAIN_ID`` as an int (0 when unset), as ROS 2 reads it."""
    text = os.environ.get("ROS_DOMAIN_ID", "").strip()
    if not text:
        return 0
    try:
        value = int(text)
    except ValueError:
        raise TransportError(f"ROS_DOMAIN_ID={text!r} is not an integer") from None
    if not 0 <= value <= 232:
        raise TransportError(f"ROS_DOMAIN_ID={value} is outside 0..232 (the UDP port range of DDS)")
    return value


def dds_qos(qos: QoSProfile, *, min_depth: int = 0) -> Qos:
    """The Cyclone DDS QoS of a ROS 2 profile (keep-last, XCDR1 as ROS 2 uses)."""
    reliability = (
        Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=100))
        if qos.reliability is Reliability.RELIABLE
        else Policy.Reliability.BestEffort
    )
    durability = (
        Policy.Durability.TransientLocal if qos.durability is Durability.TRANSIENT_LOCAL else Policy.Durability.Volatile
    )
    return Qos(
        reliability,
        durability,
        Policy.History.KeepLast(max(int(qos.depth), int(min_depth), 1)),
        Policy.DataRepresentation(use_cdrv0_representation=True),
        Policy.WriterDataLifecycle(autodispose=False),
    )


def serialize(msg: Any, msg_type: str | None = None) -> bytes:
    """CDR bytes (with encapsulation header) of ``msg``: an IDL struct, or any message with
    ROS 2 field names (rosbags, rclpy) when ``msg_type`` is given."""
    cls = MESSAGE_TYPES[msg_type] if msg_type else type(msg)
    return cdr.serialize(msg, cls)


def deserialize(msg_type: str, data: Any) -> Any:
    """The IDL struct of ``msg_type`` decoded from CDR bytes (with encapsulation header)."""
    return cdr.deserialize(data, MESSAGE_TYPES[msg_type])


def _message_class(msg_type: str, topic: str) -> type:
    try:
        return MESSAGE_TYPES[msg_type]
    except KeyError as exc:
        raise TransportError(f"{topic}: {exc.args[0]}") from None


class _DdsPublisher(Publisher):
    def __init__(self, transport: DdsTransport, topic: str, msg_type: str, cls: type, writer: DataWriter):
        self.topic = topic
        self.msg_type = msg_type
        self._transport = transport
        self._cls = cls
        self._writer = writer

    def publish(self, msg: Any) -> None:
        """Publish an IDL struct, a message with ROS 2 field names (rosbags, rclpy), or CDR bytes."""
        if self._transport.is_shut_down:
            raise TransportError(f"{self.topic}: cannot publish, transport {self._transport.node_name!r} is shut down")
        if isinstance(msg, (bytes, bytearray, memoryview)):
            data = bytes(msg)
        else:
            data = cdr.serialize(msg, self._cls)
        ret = raw_write(self._writer, data)
        if ret < 0:
            raise TransportError(f"{self.topic} [{self.msg_type}]: DDS write failed (return code {ret})")


class _DdsSubscription(Subscription):
    def __init__(self, transport: DdsTransport, topic: str, msg_type: str, cls: type, reader: DataReader,
                 callback: Callback, raw: bool):
        self.topic = topic
        self.msg_type = msg_type
        self.raw = raw
        self.callback = callback
        self.cls = cls
        self.reader = reader
        self.condition = ReadCondition(reader, _ANY_STATE)
        self.lock = threading.Lock()  # guards take() against destroy()
        self.destroyed = False
        self._transport = transport

    def destroy(self) -> None:
        """Stop receiving: no callback of this subscription runs after this returns
        (except one already running on the message thread)."""
        self._transport._remove_subscription(self)


class DdsTransport(Transport):
    """Pub/sub, wall-clock timers and parameters over Cyclone DDS (see the module docstring)."""

    kind = "dds"

    def __init__(self, node_name: str, parameters: dict[str, Any] | None = None, *, domain_id: int | None = None):
        super().__init__(node_name, parameters)
        if self._parameters.get("use_sim_time"):
            self.logger.warning("%s: the dds transport runs on the wall clock; use_sim_time is ignored "
                                "(bag time is the replay transport's)", node_name)
        self.domain_id = domain_id_from_env() if domain_id is None else int(domain_id)
        _acquire_domain(self.domain_id)
        try:
            self._participant = DomainParticipant(self.domain_id)
        except Exception as exc:  # noqa: BLE001 - the binding raises DDSException
            _release_domain(self.domain_id)
            raise TransportError(f"node {node_name!r}: cannot create a DDS participant in domain "
                                 f"{self.domain_id}: {exc}") from exc
        self._waitset = WaitSet(self._participant)
        self._lock = threading.RLock()
        self._topics: dict[str, tuple[Topic, str]] = {}
        self._subscriptions: list[_DdsSubscription] = []
        self._entities: list[Any] = []  # every DDS entity made, for an orderly deletion
        self._timers = TimerGroups(node_name, self._record_error)
        self._stop = threading.Event()
        self._error: BaseException | None = None
        self._spinning = threading.Lock()
        self._spin_thread: threading.Thread | None = None
        self._message_thread: threading.Thread | None = None
        self._shutdown_requested = False
        self._closed = False

    # -- messages ---------------------------------------------------------
    def new_message(self, msg_type: str) -> Any:
        return _message_class(msg_type, "<new_message>")()

    # -- graph ------------------------------------------------------------
    def _topic(self, topic: str, msg_type: str, cls: type) -> Topic:
        name = dds_topic_name(validate_topic_name(topic))
        with self._lock:
            self._check_open(topic)
            known = self._topics.get(name)
            if known is not None:
                if known[1] != normalize_type_name(msg_type):
                    raise TransportError(f"{topic}: already used with type {known[1]}, not {msg_type}")
                return known[0]
            dds_topic = Topic(self._participant, name, cls,
                              qos=Qos(Policy.DataRepresentation(use_cdrv0_representation=True)))
            self._topics[name] = (dds_topic, normalize_type_name(msg_type))
            self._entities.append(dds_topic)
            return dds_topic

    def create_publisher(self, topic: str, msg_type: str, qos: QoSProfile = QOS_DEFAULT) -> Publisher:
        cls = _message_class(msg_type, topic)
        with self._lock:
            writer = DataWriter(self._participant, self._topic(topic, msg_type, cls), qos=dds_qos(qos))
            self._entities.append(writer)
        return _DdsPublisher(self, topic, normalize_type_name(msg_type), cls, writer)

    def create_subscription(self, topic: str, msg_type: str, callback: Callback, qos: QoSProfile = QOS_DEFAULT, *,
                            raw: bool = False) -> Subscription:
        cls = _message_class(msg_type, topic)
        with self._lock:
            reader = DataReader(self._participant, self._topic(topic, msg_type, cls),
                                qos=dds_qos(qos, min_depth=RAW_MIN_DEPTH if raw else 0))
            sub = _DdsSubscription(self, topic, normalize_type_name(msg_type), cls, reader, callback, raw)
            self._entities.extend((reader, sub.condition))
            self._subscriptions.append(sub)
            self._waitset.attach(sub.condition)
        return sub

    def _remove_subscription(self, sub: _DdsSubscription) -> None:
        with self._lock, sub.lock:
            if sub.destroyed or self._closed:
                return
            sub.destroyed = True
            self._subscriptions.remove(sub)
            self._waitset.detach(sub.condition)
            delete_entities(sub.condition, sub.reader)
            self._entities = [e for e in self._entities if e is not sub.condition and e is not sub.reader]

    def create_timer(self, period_s: float, callback: Callable[[], None], *, group: str = "control") -> Timer:
        self._check_open("<timer>")
        return self._timers.add(period_s, callback, group)

    # -- clock --------------------------------------------------------------
    def now(self) -> float:
        return time.time()

    # -- life cycle -------------------------------------------------------
    @property
    def is_shut_down(self) -> bool:
        return self._shutdown_requested

    def spin(self, duration_s: float | None = None, until: Callable[[], bool] | None = None) -> None:
        if self._shutdown_requested:
            return
        if not self._spinning.acquire(blocking=False):
            raise TransportError(f"node {self.node_name!r} is already spinning in another thread")
        try:  # at once: a KeyboardInterrupt before the try would keep the spin lock, and shutdown() would wait for it
            deadline = None if duration_s is None else time.monotonic() + float(duration_s)
            self._spin_thread = threading.current_thread()
            self._stop.clear()
            if self._message_thread is None or not self._message_thread.is_alive():
                self._message_thread = threading.Thread(target=self._message_loop, name=f"{self.node_name}-messages",
                                                        daemon=True)
                self._message_thread.start()
            self._timers.start()
            while not self._stop.is_set():
                if until is not None and until():
                    break
                if deadline is not None and time.monotonic() >= deadline:
                    break
                self._stop.wait(0.01 if deadline is None else max(0.0, min(0.01, deadline - time.monotonic())))
        finally:
            self._stop_workers()
            self._spin_thread = None
            try:
                if self._shutdown_requested:
                    self._close()
            finally:
                self._spinning.release()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def shutdown(self) -> None:
        """Stop spinning and delete every DDS entity. Idempotent; callable from any thread,
        callbacks included (then ``spin()`` finishes the job when its workers have stopped)."""
        self._shutdown_requested = True
        self._stop.set()
        self._wake_message_thread()
        current = threading.current_thread()
        if current in (self._spin_thread, self._message_thread) or current in self._timers.threads:
            return
        if self._spinning.acquire(timeout=10.0):  # waits for a spin() in another thread to wind down
            try:
                self._close()
            finally:
                self._spinning.release()

    # -- internals ----------------------------------------------------------
    def _check_open(self, what: str) -> None:
        if self._shutdown_requested:
            raise TransportError(f"{what}: transport of node {self.node_name!r} is shut down")

    def _record_error(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc
        self._stop.set()
        self._wake_message_thread()

    def _wake_message_thread(self) -> None:
        with self._lock:
            if not self._closed:
                self._waitset.set_trigger(True)

    def _stop_workers(self) -> None:
        self._stop.set()
        self._wake_message_thread()
        self._timers.stop()
        thread = self._message_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(5.0)  # a callback still running after that keeps its thread for the next spin()
        with self._lock:
            if not self._closed:
                self._waitset.set_trigger(False)

    def _message_loop(self) -> None:
        try:
            while not self._stop.is_set():
                with self._lock:
                    idle = not self._subscriptions
                if idle:  # a waitset with nothing attached returns at once: it would spin a core
                    self._stop.wait(0.02)
                    continue
                self._waitset.wait(_WAIT_NS)
                with self._lock:
                    subs = list(self._subscriptions)
                for sub in subs:
                    if self._stop.is_set() or not self._drain(sub):
                        return
        except BaseException as exc:  # noqa: BLE001 - handed to spin(), which re-raises it
            self._record_error(exc)

    def _drain(self, sub: _DdsSubscription) -> bool:
        """Take every sample of ``sub`` and run its callback; False when spinning must stop."""
        while True:
            with sub.lock:
                if sub.destroyed:
                    return True
                samples = raw_take(sub.reader, _ANY_STATE, _TAKE_BATCH, remove_padding=sub.raw)
            for data in samples:
                if self._stop.is_set():
                    return False
                if sub.raw:
                    msg: Any = data
                else:
                    try:
                        msg = cdr.deserialize(data, sub.cls)
                    except ValueError as exc:
                        self.logger.error("%s [%s]: dropped a message that does not decode: %s", sub.topic,
                                          sub.msg_type, exc)
                        continue
                try:
                    sub.callback(msg)
                except BaseException as exc:  # noqa: BLE001 - handed to spin(), which re-raises it
                    self._record_error(exc)
                    return False
            if len(samples) < _TAKE_BATCH:
                return True

    def _close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            for sub in self._subscriptions:
                sub.destroyed = True
            self._subscriptions.clear()
            self._topics.clear()
            entities, self._entities = self._entities, []
        # children first (conditions, readers, writers, topics), then the waitset and participant
        delete_entities(*reversed(entities), self._waitset, self._participant)
        _release_domain(self.domain_id)
