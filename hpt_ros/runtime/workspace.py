"""Cartesian workspace of the TCP: a box and keep-out planes, as half-spaces ``n . p >= b``.

The box contributes six half-spaces (``box x min`` ... ``box z max``), each keep-out
plane one (its name). The allowed set is their intersection, which is convex. Three
ways to stay inside it, used by ``SafetyFilter``:

* ``clamp_point``: a target position moved into the workspace (end-effector poses);
* ``limit_step``: the farthest point on the segment from a reference to a target that
  is no further outside than the reference (bisection; for joint commands the
  segment is in joint space and the TCP comes from forward kinematics);
* ``limit_velocity``: a TCP velocity with its outward part removed where one period of
  it would leave the workspace (end-effector twists).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import ArrayLike, NDArray

from hpt_ros.spec.schema import RobotSpec

from .kinematics import DHChain

__all__ = ["Workspace"]

_BISECTIONS = 16  # 2^-16 of one tick's step: far below a micrometre
_TOLERANCE = 1e-9  # [m] rounding allowance when comparing violations


class Workspace:
    """The half-spaces of a spec's ``workspace`` and the TCP forward kinematics (if given)."""

    def __init__(self, normals: ArrayLike, bounds: ArrayLike, names: list[str], chain: DHChain | None = None):
        self.normals = np.asarray(normals, dtype=np.float64).reshape(-1, 3)
        self.bounds = np.asarray(bounds, dtype=np.float64).reshape(-1)
        self.names = tuple(names)
        self.chain = chain

    @classmethod
    def from_spec(cls, spec: RobotSpec) -> Workspace | None:
        w = spec.workspace
        if w is None:
            return None
        normals: list[tuple[float, ...]] = []
        bounds: list[float] = []
        names: list[str] = []
        if w.box_min is not None and w.box_max is not None:
            for axis, name in enumerate("xyz"):
                unit = tuple(1.0 if i == axis else 0.0 for i in range(3))
                normals += [unit, tuple(-v for v in unit)]
                bounds += [w.box_min[axis], -w.box_max[axis]]
                names += [f"box {name} min", f"box {name} max"]
        for plane in w.keep_out:
            normals.append(plane.normal)
            bounds.append(plane.bound)
            names.append(plane.name)
        chain = DHChain.from_spec(w.kinematics) if w.kinematics is not None else None
        return cls(normals, bounds, names, chain)

    def violation(self, point: ArrayLike) -> tuple[float, str]:
        """(how far outside [m], the name of the worst half-space); (0, '') inside."""
        gaps = self.bounds - self.normals @ np.asarray(point, dtype=np.float64)
        worst = int(np.argmax(gaps))
        return (float(gaps[worst]), self.names[worst]) if gaps[worst] > 0 else (0.0, "")

    def clamp_point(self, point: ArrayLike) -> tuple[NDArray[np.float64], str]:
        """``point`` moved into the workspace (alternating projections), and the half-space it was furthest outside."""
        p = np.asarray(point, dtype=np.float64).copy()
        acted = self.violation(p)[1]  # the half-space it was furthest outside
        for _ in range(8):  # a box and axis-aligned planes settle in one round; oblique planes in a few
            moved = False
            for normal, bound in zip(self.normals, self.bounds):
                gap = bound - normal @ p
                if gap > _TOLERANCE:
                    p += gap * normal
                    moved = True
            if not moved:
                break
        return p, acted

    def limit_step(self, reference: ArrayLike, target: ArrayLike,
                   tcp: Callable[[NDArray[np.float64]], NDArray[np.float64]]) -> tuple[NDArray[np.float64], str]:
        """The point ``reference + t (target - reference)`` with the largest ``t`` in [0, 1] whose TCP
        (``tcp(point)``) is no further outside than the reference's; and the half-space that stopped it.

        From inside, that keeps the TCP inside; from outside (a robot parked outside the box),
        it allows every motion that does not go further out, so the arm can come back.
        """
        ref = np.asarray(reference, dtype=np.float64)
        goal = np.asarray(target, dtype=np.float64)
        allowed = self.violation(tcp(ref))[0] + _TOLERANCE
        worst, name = self.violation(tcp(goal))
        if worst <= allowed:
            return goal, ""
        lo, hi = 0.0, 1.0
        for _ in range(_BISECTIONS):
            mid = 0.5 * (lo + hi)
            if self.violation(tcp(ref + mid * (goal - ref)))[0] <= allowed:
                lo = mid
            else:
                hi = mid
        return ref + lo * (goal - ref), name

    def limit_velocity(self, position: ArrayLike, velocity: ArrayLike,
                       period: float) -> tuple[NDArray[np.float64], str]:
        """``velocity`` [m/s] of a TCP at ``position`` such that one ``period`` of it stays inside.

        Per half-space with signed distance ``s`` (>= 0 inside): the velocity along the
        normal is raised to ``-s / period`` (reach the boundary, not beyond); from outside
        (``s`` < 0), to 0 (go no further out). Tangential motion is kept.
        """
        p = np.asarray(position, dtype=np.float64)
        v = np.asarray(velocity, dtype=np.float64).copy()
        acted = ""
        for normal, bound, name in zip(self.normals, self.bounds, self.names):
            distance = normal @ p - bound
            slowest = min(-distance / period, 0.0)
            along = normal @ v
            if along < slowest - _TOLERANCE:
                v += (slowest - along) * normal
                acted = acted or name
        return v, acted
