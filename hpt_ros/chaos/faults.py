"""The faults a chaos run can inject, and a seeded plan of them over a run's time line.

A plan is a list of ``Fault(kind, start, duration, params)`` in seconds from the start of
the run; the same seed always gives the same plan. Which kinds a run draws from depends
on what the run can express: the in-process runs (simulated time) take the sensor,
clock, engine and enable faults; the process runs take the kills, the full disk and the
unwritable folder.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["Fault", "IN_PROCESS_FAULTS", "RECORDER_FAULTS", "SENSOR_PROCESS_FAULTS", "plan_faults"]

#: faults the fault injector, the engine wrapper, the clock and the enable toggler express (replay transport)
IN_PROCESS_FAULTS = (
    "camera_stall",          # a camera stops for a while
    "joint_state_stall",     # the joint states stop for a while
    "camera_5hz",            # a camera drops to 5 Hz
    "state_nan",             # NaN or inf in the joint positions
    "wrong_encoding",        # a camera's frames carry an encoding that does not match their bytes
    "joints_reordered",      # joint names (and their values) in another order
    "joint_dropped",         # one joint missing from the joint states
    "duplicate_stamps",      # every message sent twice with the same stamp
    "out_of_order_stamps",   # messages held back and sent after newer ones
    "clock_jump_back",       # the node's clock jumps back (sim time restarting)
    "clock_jump_forward",    # the node's clock jumps forward
    "burst",                 # messages held back, then delivered all at once
    "inference_exception",   # the engine raises
    "inference_slowdown",    # the engine takes longer than the deadline
    "enable_toggle",         # motion disabled for a while, then enabled again
)
#: a sensor process killed and restarted (real DDS between processes)
SENSOR_PROCESS_FAULTS = ("sensor_process_kill",)
#: the recorder side (its own process)
RECORDER_FAULTS = ("recorder_sigkill", "disk_full", "folder_unwritable")


@dataclass(frozen=True)
class Fault:
    """One fault: ``kind``, active from ``start`` for ``duration`` seconds (run time), with its parameters."""

    kind: str
    start: float
    duration: float
    params: dict[str, Any] = field(default_factory=dict)

    @property
    def end(self) -> float:
        return self.start + self.duration

    def active(self, t: float) -> bool:
        return self.start <= t < self.end

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "start": round(self.start, 3), "duration": round(self.duration, 3),
                "params": self.params}


def _params(kind: str, rng: np.random.Generator, camera_topics: list[str]) -> dict[str, Any]:
    camera = str(rng.choice(camera_topics)) if camera_topics else ""
    if kind in ("camera_stall", "camera_5hz", "wrong_encoding"):
        extra = {"encoding": str(rng.choice(["mono16", "32FC1", "yuv422", "bgra8"]))} if kind == "wrong_encoding" else {}
        return {"topic": camera, **extra}
    if kind == "state_nan":
        return {"value": str(rng.choice(["nan", "inf", "-inf"])), "joint": int(rng.integers(0, 8))}
    if kind == "joint_dropped":
        return {"joint": int(rng.integers(0, 8))}
    if kind in ("clock_jump_back", "clock_jump_forward"):
        return {"jump_s": round(float(rng.uniform(0.3, 5.0)), 3)}
    if kind == "inference_slowdown":
        return {"sleep_s": round(float(rng.uniform(0.03, 0.06)), 3)}
    if kind == "out_of_order_stamps":
        return {"hold_back": int(rng.integers(2, 5))}
    return {}


def plan_faults(rng: np.random.Generator, kinds: tuple[str, ...], duration: float, *, count: int,
                camera_topics: list[str] | None = None, earliest: float = 0.5) -> list[Fault]:
    """``count`` faults drawn from ``kinds``, each starting in [earliest, 0.8 * duration), lasting 0.1-1.2 s
    (clock jumps and kills are instants with a recovery window), sorted by start."""
    faults = []
    for _ in range(count):
        kind = str(rng.choice(kinds))
        start = float(rng.uniform(earliest, max(earliest + 0.1, 0.8 * duration)))
        length = float(rng.uniform(0.1, 1.2))
        faults.append(Fault(kind, round(start, 3), round(length, 3), _params(kind, rng, camera_topics or [])))
    return sorted(faults, key=lambda f: f.start)
