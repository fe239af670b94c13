"""policy_lifecycle_node: the policy node as a managed (lifecycle) ROS 2 node, on rclpy.

    ros2 run hpt_ros policy_lifecycle_node --ros-args -p model:=/path/to/checkpoint
    ros2 lifecycle set /policy_node configure     # load spec and model, warm the engine up
    ros2 lifecycle set /policy_node activate      # command, starting from the measured state
    ros2 lifecycle set /policy_node deactivate    # hold
    ros2 lifecycle set /policy_node cleanup       # release publishers, subscriptions, engine

Parameters are those of :mod:`hpt_ros.nodes.policy_node`. Motion needs the node to be
active *and* enabled (the enable topic, or ``auto_enable`` / a spec without
``require_enable``); on every activation the safety filter starts again from the measured
state, so there is no jump after an inactive period. A transition that fails (a bad model
path) or that the current state does not have is refused with a log line; the node stays
up. The plain :class:`~hpt_ros.nodes.policy_node.PolicyNode` remains the node of the
``dds`` transport, which has no lifecycle.
"""

from __future__ import annotations

from typing import Any

from hpt_ros.nodes.policy_node import PolicyNode
from hpt_ros.nodes.runner import as_bool
from hpt_ros.ros.transport import QOS_DEFAULT, Transport, TransportError

__all__ = ["ManagedPolicyNode", "main"]


class _Scope:
    """The transport, recording what is created through it so that cleanup can destroy it."""

    def __init__(self, transport: Transport):
        self._transport = transport
        self._entities: list[Any] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)

    def create_publisher(self, topic: str, msg_type: str, qos: Any = QOS_DEFAULT) -> Any:
        return self._keep(self._transport.create_publisher(topic, msg_type, qos))

    def create_subscription(self, topic: str, msg_type: str, callback: Any, qos: Any = QOS_DEFAULT, **kw: Any) -> Any:
        return self._keep(self._transport.create_subscription(topic, msg_type, callback, qos, **kw))

    def create_timer(self, period_s: float, callback: Any, **kw: Any) -> Any:
        return self._keep(self._transport.create_timer(period_s, callback, **kw))

    def _keep(self, entity: Any) -> Any:
        self._entities.append(entity)
        return entity

    def release(self) -> None:
        entities, self._entities = self._entities, []
        for entity in reversed(entities):
            destroy = getattr(entity, "destroy", None) or getattr(entity, "cancel", None)
            if destroy is not None:
                destroy()


class _LifecyclePolicy(PolicyNode):
    """The policy node with a second gate: the lifecycle state must be active."""

    def __init__(self, transport: Any):
        self._active = False  # before the base class creates the control timer
        self._topic_enabled = False
        super().__init__(transport)
        auto_enable = as_bool(transport.declare_parameter("auto_enable", False))
        self._topic_enabled = auto_enable or not self.spec.safety.require_enable
        self.runtime.set_enabled(False, transport.now())

    def set_active(self, active: bool) -> None:
        self._active = bool(active)
        self._apply_enable()

    def _on_enable(self, msg: Any) -> None:
        self._topic_enabled = bool(msg.data)
        self._apply_enable()

    def _apply_enable(self) -> None:
        # a disable is a hold; the next enable starts from the measured state
        self.runtime.set_enabled(self._active and self._topic_enabled, self.transport.now())

    def _on_control_tick(self) -> None:
        if self._active:
            super()._on_control_tick()


class ManagedPolicyNode:
    """Lifecycle transitions of the policy node (see the module docstring)."""

    def __init__(self, transport: Transport):
        if not getattr(transport, "lifecycle", False):
            raise TransportError(f"node {transport.node_name!r}: the managed policy node needs an rclpy "
                                 "transport made with lifecycle=True")
        self.transport = transport
        self.policy: _LifecyclePolicy | None = None
        self._scope: _Scope | None = None
        transport.set_lifecycle_handler(self)

    def on_configure(self) -> None:
        scope = _Scope(self.transport)
        try:
            self.policy = _LifecyclePolicy(scope)
        except BaseException:
            scope.release()
            raise
        self._scope = scope
        self.transport.logger.info("configured: %s, inactive (holding)", self.policy.spec.name)

    def on_activate(self) -> None:
        self._configured().set_active(True)
        self.transport.logger.info("active: commanding from the measured state")

    def on_deactivate(self) -> None:
        self._configured().set_active(False)
        self.transport.logger.info("inactive: holding")

    def on_cleanup(self) -> None:
        self._release()

    def on_shutdown(self) -> None:
        self._release()

    def on_error(self) -> None:
        self._release()

    def _configured(self) -> _LifecyclePolicy:
        if self.policy is None:
            raise TransportError("the policy node is not configured")
        return self.policy

    def _release(self) -> None:
        if self.policy is not None:
            self.policy.set_active(False)
            self.policy.close()
        if self._scope is not None:
            self._scope.release()
        self.policy, self._scope = None, None


def main(args: list[str] | None = None) -> None:
    """``ros2 run hpt_ros policy_lifecycle_node`` (rclpy, managed)."""
    from hpt_ros.ros import make_transport

    transport = make_transport("rclpy", "policy_node", args=args, lifecycle=True)
    try:
        ManagedPolicyNode(transport)
        transport.spin()
    except KeyboardInterrupt:
        pass
    finally:
        transport.shutdown()


if __name__ == "__main__":
    main()
