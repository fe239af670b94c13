"""What every node's entry points share: build the transport, build the node, spin, shut down.

``main()`` of a node (``ros2 run hpt_ros ...``) runs it on rclpy; ``cli()`` (``hpt-ros ...``)
runs the same node class on the pure-pip dds transport.
"""

from __future__ import annotations

from typing import Any, Callable

__all__ = ["as_bool", "run_node"]


def as_bool(value: Any) -> bool:
    """A boolean parameter: launch files and ``--ros-args -p`` may pass 'true' / 'false' strings."""
    if isinstance(value, str):
        return value.strip().lower() in ("1", "true", "yes", "on")
    return bool(value)


def run_node(node_class: Callable[[Any], Any], kind: str, node_name: str, *, parameters: dict[str, Any] | None = None,
             duration_s: float | None = None, args: list[str] | None = None, view: Any = None) -> int:
    """Run ``node_class(transport)`` on a ``kind`` transport until shutdown, Ctrl-C or ``duration_s``.

    ``view`` (``hpt_ros.view.ViewOptions``): also serve a live Foxglove view of the node's robot,
    subscribed on the node's own transport.
    """
    from hpt_ros.ros import make_transport

    options: dict[str, Any] = {"args": args} if kind == "rclpy" else {}
    transport = make_transport(kind, node_name, parameters=parameters, **options)
    foxglove_view = None
    node = None
    try:
        node = node_class(transport)
        if view is not None:
            from hpt_ros.view.bridge import FoxgloveView

            foxglove_view = FoxgloveView(node.spec, host=view.host, port=view.port, name=node_name)
            foxglove_view.attach(transport)
        transport.spin(duration_s=duration_s)
    except KeyboardInterrupt:
        pass
    finally:
        transport.shutdown()
        if node is not None and callable(getattr(node, "close", None)):
            node.close()  # join an inference worker: a thread inside torch at interpreter exit aborts it
        if foxglove_view is not None:
            foxglove_view.close()
    return 0
