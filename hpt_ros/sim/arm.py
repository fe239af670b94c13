"""A kinematic FR3: joints that move toward their targets at no more than their velocity limit.

No dynamics: each ``step(dt)`` moves every joint straight toward its target by at most
``velocity * dt`` and stops exactly on it (an exact first-order rate limit). Targets are
clamped to the joint limits when they are set. The Franka Hand's second finger
(``fr3_finger_joint2``) mirrors the first, as it does on the real hand, so joint states
report both.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Iterable, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .kinematics import READY_POSE

if TYPE_CHECKING:  # pragma: no cover
    from hpt_ros.spec import RobotSpec

__all__ = [
    "ARM_JOINTS",
    "FINGER_JOINT",
    "FINGER_MAX",
    "FR3_LIMITS",
    "KinematicArm",
    "MIRROR_FINGER_JOINT",
    "READY_FINGER",
]

ARM_JOINTS: tuple[str, ...] = tuple(f"fr3_joint{i}" for i in range(1, 8))
FINGER_JOINT = "fr3_finger_joint1"
MIRROR_FINGER_JOINT = "fr3_finger_joint2"
FINGER_MAX = 0.04  # [m] per finger: the Franka Hand's 0.08 m stroke
READY_FINGER = 0.04  # open

#: FR3 datasheet limits (lower [rad|m], upper, velocity [rad/s|m/s]), as in config/robots/franka_fr3.yaml
FR3_LIMITS: dict[str, tuple[float, float, float]] = {
    "fr3_joint1": (-2.7437, 2.7437, 2.62),
    "fr3_joint2": (-1.7837, 1.7837, 2.62),
    "fr3_joint3": (-2.9007, 2.9007, 2.62),
    "fr3_joint4": (-3.0421, -0.1518, 2.62),
    "fr3_joint5": (-2.8065, 2.8065, 5.26),
    "fr3_joint6": (0.5445, 4.5169, 4.18),
    "fr3_joint7": (-3.0159, 3.0159, 5.26),
    "fr3_finger_joint1": (0.0, 0.04, 0.05),
}


class KinematicArm:
    """Joint positions rate-limited toward clamped targets.

    ``joint_names`` are the commanded joints (e.g. ``spec.action.joints``: 7 arm joints
    and ``fr3_finger_joint1``); ``lower``, ``upper``, ``velocity`` and ``q0`` are given in
    that order. If ``fr3_finger_joint1`` is among them, ``fr3_finger_joint2`` is added
    as a read-only mirror, and the finger's upper limit is capped at 0.04 m.
    """

    def __init__(
        self,
        joint_names: Sequence[str],
        lower: ArrayLike,
        upper: ArrayLike,
        velocity: ArrayLike,
        q0: ArrayLike | None = None,
    ) -> None:
        self.joint_names: tuple[str, ...] = tuple(joint_names)
        n = len(self.joint_names)
        if len(set(self.joint_names)) != n:
            raise ValueError(f"duplicate joint names: {self.joint_names}")
        if MIRROR_FINGER_JOINT in self.joint_names:
            raise ValueError(f"{MIRROR_FINGER_JOINT} mirrors {FINGER_JOINT}; do not command it")
        self.lower = np.asarray(lower, dtype=np.float64).reshape(-1).copy()
        self.upper = np.asarray(upper, dtype=np.float64).reshape(-1).copy()
        self.velocity = np.asarray(velocity, dtype=np.float64).reshape(-1).copy()
        for label, arr in (("lower", self.lower), ("upper", self.upper), ("velocity", self.velocity)):
            if arr.shape != (n,):
                raise ValueError(f"{label} has {arr.shape[0]} entries for {n} joints")
        self._finger = self.joint_names.index(FINGER_JOINT) if FINGER_JOINT in self.joint_names else None
        if self._finger is not None:
            self.upper[self._finger] = min(self.upper[self._finger], FINGER_MAX)
            self.lower[self._finger] = max(self.lower[self._finger], 0.0)
        if (self.lower > self.upper).any():
            raise ValueError("a lower limit is above its upper limit")
        if (self.velocity <= 0).any():
            raise ValueError("velocity limits must be positive")
        self._index = {name: i for i, name in enumerate(self.joint_names)}
        q = np.zeros(n) if q0 is None else np.asarray(q0, dtype=np.float64).reshape(-1)
        if q.shape != (n,):
            raise ValueError(f"q0 has {q.shape[0]} entries for {n} joints")
        self._q = np.clip(q, self.lower, self.upper)
        self._target = self._q.copy()
        self._qd = np.zeros(n)

    # -- construction ------------------------------------------------------
    @classmethod
    def from_spec(cls, spec: "RobotSpec", q0: ArrayLike | None = None) -> "KinematicArm":
        """An arm over ``spec.action.joints`` with the spec's limits; starts at the ready pose.

        The default ``q0`` is ``READY_POSE`` for ``fr3_joint1..7`` (clamped into limits),
        the fingers open, 0 for any other joint.
        """
        names = tuple(spec.action.joints)
        lower, upper, velocity = spec.joint_limits_arrays(names)
        if q0 is None:
            ready = dict(zip(ARM_JOINTS, READY_POSE))
            ready[FINGER_JOINT] = READY_FINGER
            q0 = np.array([ready.get(n, 0.0) for n in names])
        return cls(names, lower, upper, velocity, q0)

    @classmethod
    def fr3(cls, q0: ArrayLike | None = None) -> "KinematicArm":
        """The 7 arm joints and ``fr3_finger_joint1`` with ``FR3_LIMITS``; default: ready pose, fingers open."""
        names = ARM_JOINTS + (FINGER_JOINT,)
        lower, upper, velocity = (np.array([FR3_LIMITS[n][i] for n in names]) for i in range(3))
        if q0 is None:
            q0 = np.append(READY_POSE, READY_FINGER)
        return cls(names, lower, upper, velocity, q0)

    # -- names ---------------------------------------------------------------
    @property
    def names(self) -> tuple[str, ...]:
        """Every joint the arm reports: the commanded ones, then the mirrored finger if any."""
        if self._finger is None:
            return self.joint_names
        return self.joint_names + (MIRROR_FINGER_JOINT,)

    def _lookup(self, name: str) -> int | None:
        if name == MIRROR_FINGER_JOINT:
            return self._finger
        return self._index.get(name)

    def _gather(self, values: NDArray[np.float64], names: Iterable[str] | None) -> NDArray[np.float64]:
        names = self.names if names is None else tuple(names)
        out = np.empty(len(names))
        for k, name in enumerate(names):
            i = self._lookup(name)
            if i is None:
                raise KeyError(f"unknown joint {name!r}; known: {self.names}")
            out[k] = values[i]
        return out

    # -- state -----------------------------------------------------------------
    @property
    def q(self) -> NDArray[np.float64]:
        """Positions of ``joint_names`` (a copy)."""
        return self._q.copy()

    @property
    def target(self) -> NDArray[np.float64]:
        """Current (clamped) targets of ``joint_names`` (a copy)."""
        return self._target.copy()

    @property
    def at_target(self) -> bool:
        return bool(np.array_equal(self._q, self._target))

    def positions(self, names: Iterable[str] | None = None) -> NDArray[np.float64]:
        """Positions of ``names`` (default: ``self.names``, mirrored finger included); KeyError if unknown."""
        return self._gather(self._q, names)

    def velocities(self, names: Iterable[str] | None = None) -> NDArray[np.float64]:
        """Mean velocity over the last ``step`` (0 before any step), in ``names`` order."""
        return self._gather(self._qd, names)

    # -- commands -------------------------------------------------------------
    def set_target(self, names: Iterable[str], positions: ArrayLike) -> None:
        """Set targets for the named joints; unknown names (and the mirrored finger) are ignored.

        Targets are clamped to the joint limits; non-finite values are ignored.
        """
        names = tuple(names)
        values = np.asarray(positions, dtype=np.float64).reshape(-1)
        if values.shape[0] != len(names):
            raise ValueError(f"{len(names)} names but {values.shape[0]} positions")
        for name, value in zip(names, values):
            i = self._index.get(name)
            if i is None or not np.isfinite(value):
                continue
            self._target[i] = min(max(value, self.lower[i]), self.upper[i])

    def reset(self, q: ArrayLike | None = None) -> None:
        """Jump to ``q`` (default: stay), clamped; the target becomes the position, velocity 0."""
        if q is not None:
            arr = np.asarray(q, dtype=np.float64).reshape(-1)
            if arr.shape != self._q.shape:
                raise ValueError(f"q has {arr.shape[0]} entries for {self._q.shape[0]} joints")
            self._q = np.clip(arr, self.lower, self.upper)
        self._target = self._q.copy()
        self._qd = np.zeros_like(self._q)

    def step(self, dt: float) -> NDArray[np.float64]:
        """Advance ``dt`` seconds: each joint moves toward its target by at most velocity * dt.

        Returns the new positions of ``joint_names``.
        """
        if dt < 0:
            raise ValueError(f"dt must be >= 0, got {dt}")
        if dt == 0:
            self._qd = np.zeros_like(self._q)
            return self._q.copy()
        max_step = self.velocity * dt
        delta = self._target - self._q
        arrive = np.abs(delta) <= max_step
        new_q = np.where(arrive, self._target, self._q + np.sign(delta) * max_step)
        self._qd = (new_q - self._q) / dt
        self._q = new_q
        return self._q.copy()
