"""The ``rclpy`` transport: a thin adapter from the transport interface to a real ROS 2 node.

Tested on real rclpy (the wheels of Jazzy: rclpy 7.1 on Fast DDS 2.14, and of Kilted:
rclpy 9.1 on Fast DDS 3.2); written for Humble and later. This is the only module of the
package that imports rclpy, and it does so inside functions, so importing it never needs
ROS 2.

Mapping:

* one ``rclpy.node.Node`` (``lifecycle=True``: an ``rclpy.lifecycle.LifecycleNode`` whose
  transitions go to :meth:`RclpyTransport.set_lifecycle_handler`'s handler); constructor
  ``parameters`` become parameter overrides, and
  :meth:`RclpyTransport.declare_parameter` declares with a ``ParameterDescriptor``
  carrying the description (``ros2 param describe`` shows it); ``--ros-args -p`` works;
* QoS: :class:`~hpt_ros.ros.transport.QoSProfile` -> ``rclpy.qos.QoSProfile`` (keep-last,
  reliability, durability); ``QOS_SENSOR_DATA`` is rclpy's ``qos_profile_sensor_data``;
* threading, as in the ``dds`` transport: message callbacks (and services) run one at a
  time in the thread that calls :meth:`RclpyTransport.spin`, on a
  ``SingleThreadedExecutor``; each timer group (``"control"`` ...) has a thread of its
  own, to which its rclpy timers hand their calls, so inference in the control timer never
  blocks message callbacks. A timer call that comes while its group is still busy is
  skipped, as a busy mutually exclusive callback group skips it in rclpy. Measured
  (``bench/bench_rclpy_policy.py``, two 640x480 cameras at 30 Hz and 200 Hz joint states):
  rclpy's ``MultiThreadedExecutor`` with callback groups spends about twice the CPU per
  message (thread-pool hand-off, a task per callback), which on two cores comes straight
  out of inference;
* clock: ``now()`` and timers use the node clock, so ``use_sim_time:=true`` (a parameter
  override or ``--ros-args``) follows ``/clock``;
* DDS: before ``rclpy.init`` the package's loopback configurations are applied unless the
  user chose others (:func:`hpt_ros.ros.dds_config.ensure_dds_config`, Fast DDS and Cyclone);
* ``new_message``: ``pkg/msg/Name`` is imported as ``pkg.msg.Name`` (what
  ``rosidl_runtime_py`` does; that package has no wheel on the index); ``raw=True`` uses
  rclpy's raw subscriptions (CDR bytes as rosbag2 stores them) with a reader history of at
  least :data:`~hpt_ros.ros.transport.RAW_MIN_DEPTH`, as in the ``dds`` transport;
  ``publish`` accepts a message or CDR bytes;
* logging: records of ``self.logger`` (Python logging) are forwarded to the node's rclpy
  logger, so they reach ``/rosout``.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from hpt_ros.msgs.names import normalize_type_name

from .dds_config import ensure_dds_config
from .transport import (
    QOS_DEFAULT,
    RAW_MIN_DEPTH,
    QOS_SENSOR_DATA,
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

__all__ = ["RclpyTransport", "import_message_class", "rclpy_qos"]


def rclpy_qos(qos: QoSProfile) -> Any:
    """The ``rclpy.qos.QoSProfile`` of a package QoS profile."""
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, ReliabilityPolicy
    from rclpy.qos import QoSProfile as RosQoSProfile

    if qos == QOS_SENSOR_DATA:
        from rclpy.qos import qos_profile_sensor_data

        return qos_profile_sensor_data
    return RosQoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=int(qos.depth),
        reliability=ReliabilityPolicy.RELIABLE if qos.reliability is Reliability.RELIABLE
        else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if qos.durability is Durability.TRANSIENT_LOCAL
        else DurabilityPolicy.VOLATILE,
    )


def import_message_class(name: str, msg_type: str | None = None) -> type:
    """The rclpy message class of ``pkg/msg/Name`` (``from pkg.msg import Name``)."""
    package, _, cls_name = name.rpartition("/msg/")
    if not package or not cls_name:
        raise TransportError(f"message type {msg_type or name!r} is not of the form 'pkg/msg/Name'")
    try:
        cls = getattr(importlib.import_module(f"{package}.msg"), cls_name)
    except (AttributeError, ImportError) as exc:
        raise TransportError(f"message type {msg_type or name!r} is not available in this ROS 2 install: "
                             f"{exc}") from exc
    if not isinstance(cls, type):
        raise TransportError(f"message type {msg_type or name!r}: {package}.msg.{cls_name} is not a message class")
    return cls


class _RosLogHandler(logging.Handler):
    """Forwards Python log records to an rclpy logger (and so to /rosout)."""

    def __init__(self, ros_logger: Any):
        super().__init__()
        self._ros_logger = ros_logger

    def emit(self, record: logging.LogRecord) -> None:
        text = self.format(record)
        if record.levelno >= logging.ERROR:
            self._ros_logger.error(text)
        elif record.levelno >= logging.WARNING:
            self._ros_logger.warning(text)
        elif record.levelno >= logging.INFO:
            self._ros_logger.info(text)
        else:
            self._ros_logger.debug(text)


class _RclpyPublisher(Publisher):
    def __init__(self, topic: str, msg_type: str, node: Any, publisher: Any):
        self.topic = topic
        self.msg_type = msg_type
        self.publisher = publisher
        self._node = node

    def publish(self, msg: Any) -> None:
        self.publisher.publish(bytes(msg) if isinstance(msg, (bytearray, memoryview)) else msg)

    def destroy(self) -> None:
        self._node.destroy_publisher(self.publisher)


class _RclpySubscription(Subscription):
    def __init__(self, topic: str, msg_type: str, node: Any, subscription: Any):
        self.topic = topic
        self.msg_type = msg_type
        self.subscription = subscription
        self._node = node

    def destroy(self) -> None:
        self._node.destroy_subscription(self.subscription)


class _RclpyTimer(Timer):
    def __init__(self, node: Any, timer: Any, worker: Any = None, callback: Any = None):
        self.timer = timer
        self.worker = worker
        self._callback = callback
        self._node = node

    def cancel(self) -> None:
        """Stop the timer; on return its callback neither waits nor runs (up to 5 s for a running
        call), so what it uses may be destroyed next (a lifecycle cleanup destroys publishers)."""
        self.timer.cancel()
        if self.worker is not None:
            self.worker.forget(self._callback, timeout_s=5.0)

    def destroy(self) -> None:
        self.cancel()
        self._node.destroy_timer(self.timer)


class _GroupThread:
    """One timer group's thread: runs the calls handed to it one at a time; a call handed in
    while one runs or waits is dropped (that period is skipped)."""

    def __init__(self, name: str, on_error: Callable[[BaseException], None]):
        self._condition = threading.Condition()
        self._pending: Callable[[], None] | None = None
        self._busy = False
        self._stopped = False
        self._on_error = on_error
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)
        self.thread.start()

    def submit(self, call: Callable[[], None]) -> bool:
        with self._condition:
            if self._stopped or self._busy or self._pending is not None:
                return False
            self._pending = call
            self._condition.notify_all()
            return True

    def _run(self) -> None:
        while True:
            with self._condition:
                while self._pending is None and not self._stopped:
                    self._condition.wait()
                if self._stopped:
                    return
                call, self._pending, self._busy = self._pending, None, True
            try:
                call()
            except BaseException as exc:  # noqa: BLE001 - handed to spin(), which re-raises it
                self._on_error(exc)
            finally:
                with self._condition:
                    self._busy = False
                    self._condition.notify_all()

    def forget(self, call: Callable[[], None], timeout_s: float) -> None:
        """Drop ``call`` if it waits, and wait until the group runs nothing (not from its own thread)."""
        with self._condition:
            if self._pending is call:
                self._pending = None
            if threading.current_thread() is not self.thread:
                self._condition.wait_for(lambda: not self._busy, timeout_s)

    def stop(self, timeout_s: float) -> None:
        with self._condition:
            self._stopped = True
            self._pending = None
            self._condition.notify_all()
        if self.thread is not threading.current_thread():
            self.thread.join(timeout_s)


class RclpyTransport(Transport):
    """A ROS 2 node behind the transport interface (see the module docstring)."""

    kind = "rclpy"

    def __init__(self, node_name: str, parameters: dict[str, Any] | None = None, *, namespace: str = "",
                 args: list[str] | None = None, lifecycle: bool = False):
        super().__init__(node_name, parameters)
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.node import Node
        from rclpy.parameter import Parameter

        self._owns_context = not rclpy.ok()
        if self._owns_context:
            ensure_dds_config()
            rclpy.init(args=args)
        overrides = [Parameter(name, value=value) for name, value in self._parameters.items()]
        node_class: Any = Node
        if lifecycle:
            from rclpy.lifecycle import LifecycleNode

            node_class = LifecycleNode
        self.node = node_class(node_name, namespace=namespace, parameter_overrides=overrides)
        self.lifecycle = bool(lifecycle)
        self._lifecycle_handler: Any = None
        if lifecycle:
            self._refuse_unavailable_transitions()
        self._groups: dict[str, _GroupThread] = {}
        self._groups_lock = threading.Lock()
        self._error: BaseException | None = None
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._message_classes: dict[str, type] = {}
        self._log_handler = _RosLogHandler(self.node.get_logger())
        self.logger.addHandler(self._log_handler)
        self.logger.propagate = False
        self._shut_down = False

    # -- messages ---------------------------------------------------------
    def message_class(self, msg_type: str) -> type:
        name = normalize_type_name(msg_type)
        cls = self._message_classes.get(name)
        if cls is None:
            cls = self._message_classes[name] = import_message_class(name, msg_type)
        return cls

    def new_message(self, msg_type: str) -> Any:
        return self.message_class(msg_type)()

    # -- graph ------------------------------------------------------------
    def create_publisher(self, topic: str, msg_type: str, qos: QoSProfile = QOS_DEFAULT) -> Publisher:
        validate_topic_name(topic)
        publisher = self.node.create_publisher(self.message_class(msg_type), topic, rclpy_qos(qos))
        return _RclpyPublisher(topic, normalize_type_name(msg_type), self.node, publisher)

    def create_subscription(self, topic: str, msg_type: str, callback: Callback, qos: QoSProfile = QOS_DEFAULT, *,
                            raw: bool = False) -> Subscription:
        validate_topic_name(topic)
        if raw and qos.depth < RAW_MIN_DEPTH:
            qos = dataclasses.replace(qos, depth=RAW_MIN_DEPTH)
        subscription = self.node.create_subscription(self.message_class(msg_type), topic, callback, rclpy_qos(qos),
                                                     raw=raw)
        return _RclpySubscription(topic, normalize_type_name(msg_type), self.node, subscription)

    def create_timer(self, period_s: float, callback: Callable[[], None], *, group: str = "control") -> Timer:
        if self._shut_down:
            raise TransportError(f"<timer>: transport of node {self.node_name!r} is shut down")
        with self._groups_lock:
            worker = self._groups.get(group)
            if worker is None:
                worker = self._groups[group] = _GroupThread(f"{self.node_name}-{group}", self._record_error)
        timer = self.node.create_timer(float(period_s), lambda: worker.submit(callback))
        return _RclpyTimer(self.node, timer, worker, callback)

    def group_thread(self, group: str) -> threading.Thread | None:
        """The thread that runs the timers of ``group`` (None before its first timer)."""
        worker = self._groups.get(group)
        return None if worker is None else worker.thread

    def _record_error(self, exc: BaseException) -> None:
        if self._error is None:
            self._error = exc

    # -- clock ------------------------------------------------------------
    def now(self) -> float:
        return self.node.get_clock().now().nanoseconds * 1e-9

    # -- parameters -------------------------------------------------------
    def declare_parameter(self, name: str, default: Any, description: str = "") -> Any:
        from rcl_interfaces.msg import ParameterDescriptor

        if self.node.has_parameter(name):
            value = self.node.get_parameter(name).value
        else:
            value = self.node.declare_parameter(name, default, ParameterDescriptor(description=description)).value
        self._parameters[name] = value
        return value

    # -- managed (lifecycle) node -------------------------------------------
    def set_lifecycle_handler(self, handler: Any) -> None:
        """Route the transitions of a ``lifecycle=True`` node to ``handler``.

        ``handler.on_configure()``, ``on_activate()``, ``on_deactivate()``, ``on_cleanup()``,
        ``on_shutdown()`` and ``on_error()`` (each optional, no arguments): returning
        completes the transition; raising refuses it (FAILURE, back to the previous state),
        with the exception logged.
        """
        if not self.lifecycle:
            raise TransportError(f"node {self.node_name!r} is not a lifecycle node (make it with lifecycle=True)")
        from rclpy.lifecycle import ManagedEntity, TransitionCallbackReturn

        log = self.logger

        def transition(name: str) -> Callable[[Any, Any], Any]:
            def callback(entity: Any, state: Any) -> Any:
                method = getattr(handler, name, None)
                if method is None:
                    return TransitionCallbackReturn.SUCCESS
                try:
                    method()
                except Exception as exc:  # noqa: BLE001 - a refused transition, not a crash
                    log.error("%s: %s failed, transition refused: %s", self.node_name, name[3:], exc)
                    return TransitionCallbackReturn.FAILURE
                return TransitionCallbackReturn.SUCCESS
            return callback

        self._lifecycle_handler = handler
        names = ("on_configure", "on_activate", "on_deactivate", "on_cleanup", "on_shutdown", "on_error")
        entity_class = type("_TransportManagedEntity", (ManagedEntity,), {n: transition(n) for n in names})
        self.node.add_managed_entity(entity_class())

    def lifecycle_state(self) -> str:
        """The label of the managed node's current state ('unconfigured', 'inactive', 'active', ...)."""
        return str(self.node._state_machine.current_state[1])

    def _refuse_unavailable_transitions(self) -> None:
        """A change_state request for a transition the current state does not have is answered
        ``success=False`` with a log line; rclpy 7.1 / 9.1 let rcl's error escape the service
        callback, which ends the executor's spin (the process)."""
        service = self.node._service_change_state
        original = service.callback
        state_machine = self.node._state_machine
        log = self.logger

        def change_state(request: Any, response: Any) -> Any:
            current = state_machine.current_state[1]
            available = {(t[0], t[1]) for t in state_machine.available_transitions}
            wanted = request.transition.label or request.transition.id
            if not any(wanted in pair for pair in available):
                log.warning("%s: transition %r is not available in state %r (available: %s)", self.node_name, wanted,
                            current, ", ".join(sorted(label for _, label in available)) or "none")
                response.success = False
                return response
            return original(request, response)

        service.callback = change_state

    # -- life cycle -------------------------------------------------------
    def spin(self, duration_s: float | None = None, until: Callable[[], bool] | None = None) -> None:
        """Run callbacks until shutdown, ``duration_s`` wall-clock seconds, or ``until()``.

        An exception raised by a timer callback (in its group's thread) stops spinning and is
        re-raised here; one raised by a message callback comes straight through."""
        import rclpy
        from rclpy.executors import ExternalShutdownException

        deadline = None if duration_s is None else time.monotonic() + float(duration_s)
        while not self._shut_down and rclpy.ok(context=self.node.context):
            if self._error is not None:
                error, self._error = self._error, None
                raise error
            if until is not None and until():
                return
            timeout = 0.05
            if deadline is not None:
                timeout = deadline - time.monotonic()
                if timeout <= 0:
                    return
                timeout = min(timeout, 0.05)
            try:
                self._executor.spin_once(timeout_sec=timeout)
            except ExternalShutdownException:  # SIGINT / SIGTERM: rclpy's handlers shut the context down
                return
            except Exception as exc:  # noqa: BLE001 - re-raised unless it is one of the benign races below
                if type(exc).__name__ == "RCLError" and not rclpy.ok(context=self.node.context):
                    return  # SIGINT / SIGTERM shut the context down while the executor built its wait set
                # a timer cancelled (another thread) between the wait and its call: rcl refuses the call
                if type(exc).__name__ != "RCLError" or "timer is canceled" not in str(exc):
                    raise

    def shutdown(self) -> None:
        """Destroy the node (and the rclpy context if this transport created it). Idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        import rclpy

        if self.lifecycle and self.lifecycle_state() in ("unconfigured", "inactive", "active"):
            # the handler releases what it holds; after SIGINT / SIGTERM the context is gone and
            # the state machine cannot announce a transition, so the handler is called directly
            if rclpy.ok(context=self.node.context):
                try:
                    self.node.trigger_shutdown()
                except Exception as exc:  # noqa: BLE001 - shutting down regardless
                    self.logger.warning("%s: shutdown transition failed: %s", self.node_name, exc)
            elif self._lifecycle_handler is not None and hasattr(self._lifecycle_handler, "on_shutdown"):
                try:
                    self._lifecycle_handler.on_shutdown()
                except Exception as exc:  # noqa: BLE001 - shutting down regardless
                    logging.getLogger(__name__).warning("%s: on_shutdown failed: %s", self.node_name, exc)
        self.logger.removeHandler(self._log_handler)
        self.logger.propagate = True
        with self._groups_lock:
            groups = list(self._groups.values())
        for worker in groups:
            worker.stop(timeout_s=5.0)  # a callback still running after that finds the node gone
        self._executor.shutdown()
        self.node.destroy_node()
        if self._owns_context:
            rclpy.try_shutdown()
