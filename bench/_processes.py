"""Stopping the benches' child processes: signal them, give them time to shut down, kill the rest.

The benches run as files (``python bench/X.py``), so this folder is on ``sys.path`` and
``from _processes import stop_children`` finds this module.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterable

__all__ = ["stop_children"]


def stop_children(procs: Iterable[subprocess.Popen], sig: int = signal.SIGINT, timeout_s: float = 20.0) -> None:
    """Send ``sig`` to every child still running, then wait for each; kill one that outlives ``timeout_s``.

    All are signalled before the first wait, so they shut down side by side (a node's
    clean shutdown can take seconds: DDS entities, an engine's worker, a bag's footer).
    """
    procs = list(procs)
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(sig)
    for proc in procs:
        try:
            proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
