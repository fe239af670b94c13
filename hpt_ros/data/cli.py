"""``hpt-ros bag repair BAG...``: the adapter between ``hpt_ros.cli`` and ``repair_bag``.

Argument parsing lives in ``hpt_ros.cli``; this only runs the repair on each path and
prints one line per bag. Exit status 1 when any bag could not be repaired.
"""

from __future__ import annotations

import argparse
import sys

from .errors import BagError
from .repair import repair_bag

__all__ = ["run_repair"]


def run_repair(args: argparse.Namespace) -> int:
    """Repair every bag in ``args.paths``; print what was done."""
    status = 0
    for path in args.paths:
        try:
            report = repair_bag(path)
        except (BagError, OSError) as err:
            print(f"error: {err}", file=sys.stderr)
            status = 1
            continue
        counts = ", ".join(f"{topic} {n}" for topic, n in report.message_counts.items())
        if not report.repaired:
            print(f"{path}: complete, nothing to do ({report.message_count} messages: {counts})")
            continue
        print(
            f"{path}: recovered {report.message_count} messages ({counts}); "
            f"original kept as {report.original}; {report.problem}"
        )
        for note in report.notes:
            print(f"  note: {note}")
    return status
