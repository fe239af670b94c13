"""``hpt-ros view``: a Foxglove bridge from the DDS graph (no ROS 2 install needed).

    hpt-ros view --robot franka_fr3                     # ws://127.0.0.1:8765
    hpt-ros view --robot franka_fr3 --view-host 0.0.0.0 --view-port 8765   # for another computer

Subscribes to the robot spec's cameras, joint states and commands and to the nodes' own
topics (predicted chunks, ``/diagnostics``, the simulated robot's task status) over the
``dds`` transport, with the package's DDS configuration (loopback unless ``CYCLONEDDS_URI``
says otherwise), and serves them over the Foxglove WebSocket protocol. In Foxglove:
"Open connection" -> Foxglove WebSocket -> the printed URL, then import the layout
``config/foxglove/hpt_ros_layout.json``.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

from .options import add_view_arguments, view_options

__all__ = ["cli", "serve_graph"]


def serve_graph(robot: str, host: str, port: int, duration_s: float | None = None) -> int:
    """Bridge the DDS graph of ``robot``'s topics to Foxglove until Ctrl-C or ``duration_s``."""
    from hpt_ros.ros import make_transport
    from hpt_ros.spec import load_spec

    from . import layout_path
    from .bridge import FoxgloveView

    spec = load_spec(robot)
    transport = make_transport("dds", "foxglove_view")
    try:
        with FoxgloveView(spec, host=host, port=port) as view:
            view.attach(transport)
            print(f"Foxglove view of {spec.name}: {view.url} (layout: {layout_path()})", flush=True)
            transport.spin(duration_s=duration_s)
    except KeyboardInterrupt:
        pass
    finally:
        transport.shutdown()
    return 0


def cli(argv: Sequence[str], prog: str = "hpt-ros view") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--robot", default="franka_fr3", help="robot spec YAML or shipped name (default franka_fr3)")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    add_view_arguments(parser, flag=False)
    args = parser.parse_args(list(argv))
    options = view_options(args)
    assert options is not None
    return serve_graph(args.robot, options.host, options.port, args.duration)
