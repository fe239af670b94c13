"""The ``rclpy`` transport: a thin adapter from the transport interface to a real ROS 2 node.

Targets ROS 2 Humble and Jazzy. This is the only module of the package that imports
rclpy, and it does so inside functions, so importing it never needs ROS 2.

Mapping:

* one ``rclpy.node.Node``; constructor ``parameters`` become parameter overrides, and
  :meth:`RclpyTransport.declare_parameter` declares with a ``ParameterDescriptor``
  carrying the description (``ros2 param describe`` shows it); ``--ros-args -p`` works;
* QoS: :class:`~hpt_ros.ros.transport.QoSProfile` -> ``rclpy.qos.QoSProfile`` (keep-last,
  reliability, durability); ``QOS_SENSOR_DATA`` is rclpy's ``qos_profile_sensor_data``;
* threading: a ``MultiThreadedExecutor``; all subscriptions share one
  ``MutuallyExclusiveCallbackGroup`` (message callbacks run one at a time, as in the
  ``dds`` transport) and each timer group (``"control"`` ...) has its own, so inference
  in the control timer never blocks message callbacks;
* clock: ``now()`` and timers use the node clock, so ``use_sim_time:=true`` (a parameter
  override or ``--ros-args``) follows ``/clock``;
* DDS: before ``rclpy.init`` the package's loopback configurations are applied unless the
  user chose others (:func:`hpt_ros.ros.dds_config.ensure_dds_config`, Fast DDS and Cyclone);
* ``new_message``: ``pkg/msg/Name`` is imported as ``pkg.msg.Name`` (what
  ``rosidl_runtime_py`` does; that package has no wheel on the index); ``raw=True`` uses
  rclpy's raw subscriptions (CDR bytes as rosbag2 stores them); ``publish`` accepts a
  message or CDR bytes;
* logging: records of ``self.logger`` (Python logging) are forwarded to the node's rclpy
  logger, so they reach ``/rosout``.
"""

from __future__ import annotations

import importlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from .dds_config import ensure_dds_config
from .names import normalize_type_name
from .transport import (
    QOS_DEFAULT,
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
    def __init__(self, node: Any, timer: Any):
        self.timer = timer
        self._node = node

    def cancel(self) -> None:
        self.timer.cancel()

    def destroy(self) -> None:
        self.timer.cancel()
        self._node.destroy_timer(self.timer)


class RclpyTransport(Transport):
    """A ROS 2 node behind the transport interface (see the module docstring)."""

    kind = "rclpy"

    def __init__(self, node_name: str, parameters: dict[str, Any] | None = None, *, namespace: str = "",
                 args: list[str] | None = None, num_threads: int | None = None, lifecycle: bool = False):
        super().__init__(node_name, parameters)
        import rclpy
        from rclpy.callback_groups import MutuallyExclusiveCallbackGroup
        from rclpy.executors import MultiThreadedExecutor
        from rclpy.node import Node
        from rclpy.parameter import Parameter

        self._owns_context = not rclpy.ok()
        if self._owns_context:
            ensure_dds_config()
            rclpy.init(args=args)
        overrides = [Parameter(name, value=value) for name, value in self._parameters.items()]
        if lifecycle:
            from rclpy.lifecycle import LifecycleNode as Node  # noqa: F811 - a managed node
        self.node = Node(node_name, namespace=namespace, parameter_overrides=overrides)
        self.lifecycle = bool(lifecycle)
        if lifecycle:
            self._refuse_unavailable_transitions()
        self._group_factory: Callable[[], Any] = MutuallyExclusiveCallbackGroup
        self._message_group = MutuallyExclusiveCallbackGroup()
        self._timer_groups: dict[str, Any] = {}
        self._executor = MultiThreadedExecutor(num_threads=num_threads)
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
        subscription = self.node.create_subscription(
            self.message_class(msg_type), topic, callback, rclpy_qos(qos),
            callback_group=self._message_group, raw=raw)
        return _RclpySubscription(topic, normalize_type_name(msg_type), self.node, subscription)

    def create_timer(self, period_s: float, callback: Callable[[], None], *, group: str = "control") -> Timer:
        callback_group = self._timer_groups.get(group)
        if callback_group is None:
            callback_group = self._timer_groups[group] = self._group_factory()
        return _RclpyTimer(self.node, self.node.create_timer(float(period_s), callback, callback_group=callback_group))

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
        """Run callbacks until shutdown, ``duration_s`` wall-clock seconds, or ``until()``."""
        import rclpy

        deadline = None if duration_s is None else time.monotonic() + float(duration_s)
        while not self._shut_down and rclpy.ok(context=self.node.context):
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
            except Exception as exc:  # noqa: BLE001 - re-raised unless it is the benign race below
                # a timer cancelled while its call was already queued: rcl refuses the call
                if type(exc).__name__ != "RCLError" or "timer is canceled" not in str(exc):
                    raise

    def shutdown(self) -> None:
        """Destroy the node (and the rclpy context if this transport created it). Idempotent."""
        if self._shut_down:
            return
        self._shut_down = True
        import rclpy

        if self.lifecycle and self.lifecycle_state() in ("unconfigured", "inactive", "active"):
            try:
                self.node.trigger_shutdown()  # the handler releases what it holds
            except Exception as exc:  # noqa: BLE001 - shutting down regardless
                self.logger.warning("%s: shutdown transition failed: %s", self.node_name, exc)
        self.logger.removeHandler(self._log_handler)
        self.logger.propagate = True
        self._executor.shutdown()
        self._wait_for_callbacks(timeout_s=5.0)
        self.node.destroy_node()
        if self._owns_context:
            rclpy.try_shutdown()

    def _wait_for_callbacks(self, timeout_s: float) -> None:
        """Let callbacks already handed to the executor's threads finish before the node goes.

        ``spin_once`` returns as soon as it has queued a callback, and rclpy's
        ``Executor.shutdown`` does not wait for them (rclpy 7.1 / 9.1): destroying the node
        under a queued callback makes it fail ("cannot use Destroyable because destruction
        was requested"). A callback calling ``shutdown()`` does not wait for itself.
        """
        if threading.current_thread().name.startswith("ThreadPoolExecutor"):
            return
        pending = list(getattr(self._executor, "_futures", ()))
        deadline = time.monotonic() + timeout_s
        for future in pending:
            while not future.done() and time.monotonic() < deadline:
                time.sleep(0.005)
            if future.done() and not future.cancelled():
                future.exception()  # marks it retrieved
