"""The ``--view`` flags shared by the commands that can serve a live Foxglove view."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

__all__ = ["DEFAULT_VIEW_HOST", "DEFAULT_VIEW_PORT", "ViewOptions", "add_view_arguments", "view_options"]

#: loopback by default: the view carries camera frames and commands, it is not for the network
DEFAULT_VIEW_HOST = "127.0.0.1"
#: Foxglove's default WebSocket port (what its "Open connection" dialog proposes)
DEFAULT_VIEW_PORT = 8765


@dataclass(frozen=True)
class ViewOptions:
    """Where the Foxglove WebSocket server listens (port 0: any free port)."""

    host: str = DEFAULT_VIEW_HOST
    port: int = DEFAULT_VIEW_PORT


def add_view_arguments(parser: argparse.ArgumentParser, *, flag: bool = True) -> None:
    """``--view`` (unless ``flag`` is False: the command always serves), ``--view-host``, ``--view-port``."""
    if flag:
        parser.add_argument("--view", action="store_true",
                            help="serve a live view over the Foxglove WebSocket protocol (open "
                                 "ws://HOST:PORT in Foxglove, layout: config/foxglove/hpt_ros_layout.json)")
    parser.add_argument("--view-host", default=DEFAULT_VIEW_HOST,
                        help=f"address the view binds (default {DEFAULT_VIEW_HOST}; 0.0.0.0 for every interface)")
    parser.add_argument("--view-port", type=int, default=DEFAULT_VIEW_PORT,
                        help=f"WebSocket port of the view (default {DEFAULT_VIEW_PORT}; 0: any free port)")


def view_options(args: argparse.Namespace) -> ViewOptions | None:
    """The options parsed by ``add_view_arguments``; None when ``--view`` was not given."""
    if not getattr(args, "view", True):
        return None
    if not 0 <= args.view_port <= 65535:
        raise ValueError(f"--view-port must be in 0..65535, got {args.view_port}")
    return ViewOptions(host=args.view_host, port=args.view_port)
