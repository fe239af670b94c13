"""``FoxgloveView``: a Foxglove WebSocket server fed by subscriptions on any transport.

Each ROS topic of :func:`~hpt_ros.view.topics.view_topics` is a channel with message
encoding ``cdr`` and its ROS 2 message definition as a ``ros2msg`` schema (what rosbag2
writes into mcap files), so Foxglove decodes it natively: Image panels show the cameras,
Plot panels the joint states and chunks, the Diagnostics panels ``/diagnostics``. One more
channel, ``/hpt/safety_state`` (JSON), carries the policy node's safety state and counters
taken out of its diagnostics, for an Indicator panel.

A message is serialised only while some client subscribes to its channel, so an idle view
costs a callback per message and nothing more. Log times are the transport's clock (wall
time live, simulated time in ``sim-eval``).
"""

from __future__ import annotations

import json
import logging
from typing import Any

from hpt_ros.ros.transport import QOS_DEFAULT, Subscription, Transport
from hpt_ros.spec import RobotSpec

from .options import DEFAULT_VIEW_HOST, DEFAULT_VIEW_PORT
from .topics import DIAGNOSTICS_TOPIC, SAFETY_STATE_TOPIC, ViewTopic, view_topics

__all__ = ["FoxgloveView", "SAFETY_STATE_SCHEMA"]

logger = logging.getLogger("hpt_ros.view")

#: JSON schema of the safety-state channel: the policy node's diagnostics, typed
SAFETY_STATE_SCHEMA: dict[str, Any] = {
    "title": "hpt_ros.SafetyState",
    "type": "object",
    "properties": {
        "node": {"type": "string", "description": "diagnostic status name of the policy node"},
        "state": {"type": "string", "description": "'commanding' or the reason motion is held"},
        "level": {"type": "integer", "description": "0 OK, 1 WARN (disabled), 2 ERROR (held)"},
        "values": {"type": "object", "description": "the status's key/value pairs, numbers as numbers"},
    },
}
_POLICY_STATUS_SUFFIX = ": policy"  # PolicyNode names its status '<node>: policy'


def _number_or_text(text: str) -> float | str:
    try:
        return float(text)
    except ValueError:
        return text


class FoxgloveView:
    """Serve ``spec``'s topics to Foxglove; ``attach`` it to the transports that see them."""

    def __init__(self, spec: RobotSpec, *, host: str = DEFAULT_VIEW_HOST, port: int = DEFAULT_VIEW_PORT,
                 name: str = "hpt_ros", distro: str = "humble"):
        import foxglove

        from hpt_ros.data.typestores import distro_typestore

        self.spec = spec
        self.topics: list[ViewTopic] = view_topics(spec)
        self._context = foxglove.Context()
        store = distro_typestore(distro)
        self._store = store
        self._channels: dict[str, Any] = {}
        for t in self.topics:
            definition = store.generate_msgdef(t.type, ros_version=2)[0]
            schema = foxglove.Schema(name=t.type, encoding="ros2msg", data=definition.encode())
            self._channels[t.topic] = foxglove.Channel(t.topic, message_encoding="cdr", schema=schema,
                                                       context=self._context, metadata={"what": t.what})
        self._safety = foxglove.Channel(SAFETY_STATE_TOPIC, schema=SAFETY_STATE_SCHEMA, context=self._context)
        try:
            self._server = foxglove.start_server(name=name, host=host, port=port, context=self._context)
        except Exception as exc:  # the SDK raises its own error type for a port in use or a bad address
            raise OSError(f"Foxglove view: cannot listen on {host}:{port}: {exc}") from exc
        self.host = host
        self._subscriptions: list[Subscription] = []
        logger.info("Foxglove view on %s (%d topics; layout: config/foxglove/hpt_ros_layout.json)",
                    self.url, len(self.topics))

    @property
    def port(self) -> int:
        """The port the server listens on (the one chosen when 0 was asked for)."""
        return int(self._server.port)

    @property
    def url(self) -> str:
        return f"ws://{self.host}:{self.port}"

    def has_subscribers(self, topic: str) -> bool:
        """True while a client subscribes to ``topic``'s channel."""
        channel = self._safety if topic == SAFETY_STATE_TOPIC else self._channels.get(topic)
        if channel is None:
            raise KeyError(f"the view serves no topic {topic!r}; it serves {sorted(self._channels)}")
        return bool(channel.has_sinks())

    def attach(self, transport: Transport) -> None:
        """Subscribe to every view topic on ``transport`` (callbacks run while it spins)."""
        for t in self.topics:
            self._subscriptions.append(
                transport.create_subscription(t.topic, t.type, self._forwarder(transport, t), t.qos))
        self._subscriptions.append(transport.create_subscription(
            DIAGNOSTICS_TOPIC, "diagnostic_msgs/msg/DiagnosticArray", self._safety_forwarder(transport), QOS_DEFAULT))

    def _forwarder(self, transport: Transport, t: ViewTopic):
        from hpt_ros.msgs.idl import MESSAGE_TYPES, normalize_type_name
        from hpt_ros.msgs.idl.cdr import serialize

        channel, store = self._channels[t.topic], self._store
        idl_class = MESSAGE_TYPES.get(normalize_type_name(t.type))

        def forward(msg: Any) -> None:
            if not channel.has_sinks():
                return
            if idl_class is not None:
                data = serialize(msg, idl_class)
            else:  # a type without an IDL struct: the message is a rosbags dataclass
                data = bytes(store.serialize_cdr(msg, t.type))
            channel.log(data, log_time=_ns(transport.now()))

        return forward

    def _safety_forwarder(self, transport: Transport):
        channel = self._safety

        def forward(msg: Any) -> None:
            if not channel.has_sinks():
                return
            for status in msg.status:
                if not str(status.name).endswith(_POLICY_STATUS_SUFFIX):
                    continue
                level = status.level if isinstance(status.level, int) else int.from_bytes(bytes(status.level),
                                                                                           "little")
                channel.log({"node": str(status.name), "state": str(status.message), "level": level,
                             "values": {kv.key: _number_or_text(str(kv.value)) for kv in status.values}},
                            log_time=_ns(transport.now()))

        return forward

    def close(self) -> None:
        """Drop the subscriptions (of transports still open) and stop the server."""
        for sub in self._subscriptions:
            try:
                sub.destroy()
            except Exception:  # the transport may be shut down already; its subscriptions went with it
                pass
        self._subscriptions.clear()
        self._server.stop()

    def __enter__(self) -> FoxgloveView:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _ns(seconds: float) -> int:
    return int(round(seconds * 1e9))
