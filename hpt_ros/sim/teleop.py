"""A scripted teleoperator: joint targets that bring the hand over the dog bowl and open the gripper.

Stands in for a person with a space mouse when recording demonstrations on the fake
robot. Each call takes the measured joint positions and returns the next joint target
(7 arm joints + ``fr3_finger_joint1``) for one control tick:

1. ``approach``: the TCP goes in a straight line to ``approach_height`` above the bowl;
2. ``descend``: down to ``release_height`` above the table;
3. ``release``: the fingers open (0.04 m) while the TCP holds over the bowl;
4. ``done``: keep holding.

The TCP moves at most ``speed`` m/s; the arm step comes from ``ik_step`` (position,
tool pointing down); the joint step is scaled down so that no joint moves more than
``max_velocity_fraction`` of its velocity limit per tick (the same fraction the policy
node's safety layer allows), before and after Gaussian ``noise`` [rad] is added to the
arm targets. The bowl position differs per episode, so the right action depends on what
the cameras see. Deterministic for a seeded ``rng``.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .arm import ARM_JOINTS, FINGER_JOINT, FR3_LIMITS
from .kinematics import READY_POSE, TCP_INDEX, forward_kinematics, ik_step
from .scene import FeedDogScene

__all__ = ["PHASES", "ScriptedTeleoperator"]

PHASES = ("approach", "descend", "release", "done")


class ScriptedTeleoperator:
    """Joint targets, one control tick at a time, that move the TCP over the bowl and open the gripper.

    ``arm_joint_names`` are the 7 FR3 arm joints in the order positions are given and
    targets returned (any order); the finger joint comes last. ``lower``, ``upper`` and
    ``velocity`` (that order, 7 entries) default to the FR3 datasheet (``FR3_LIMITS``).
    ``rng`` is a ``numpy.random.Generator`` or a seed.
    """

    def __init__(
        self,
        scene: FeedDogScene,
        arm_joint_names: Sequence[str] = ARM_JOINTS,
        rng: np.random.Generator | int | None = 0,
        noise: float = 0.002,
        *,
        rate_hz: float = 15.0,
        lower: ArrayLike | None = None,
        upper: ArrayLike | None = None,
        velocity: ArrayLike | None = None,
        max_velocity_fraction: float = 0.5,
        speed: float = 0.15,
        approach_height: float = 0.15,
        release_height: float = 0.08,
        finger_closed: float = 0.01,
        finger_open: float = 0.04,
        finger_velocity: float = FR3_LIMITS[FINGER_JOINT][2],
        damping: float = 0.05,
    ) -> None:
        names = tuple(arm_joint_names)
        if sorted(names) != sorted(ARM_JOINTS):
            raise ValueError(f"arm_joint_names must be the 7 FR3 arm joints {ARM_JOINTS}, got {names}")
        self.scene = scene
        self.arm_joint_names = names
        self.joint_names: tuple[str, ...] = names + (FINGER_JOINT,)
        #: position i of the caller's order is FK joint _fk[i]
        self._fk = np.array([ARM_JOINTS.index(n) for n in names])
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.noise = float(noise)
        self.dt = 1.0 / float(rate_hz)
        defaults = np.array([FR3_LIMITS[n] for n in names])
        self.lower = defaults[:, 0] if lower is None else np.asarray(lower, dtype=np.float64).reshape(7)
        self.upper = defaults[:, 1] if upper is None else np.asarray(upper, dtype=np.float64).reshape(7)
        self.velocity = defaults[:, 2] if velocity is None else np.asarray(velocity, dtype=np.float64).reshape(7)
        self.max_velocity_fraction = float(max_velocity_fraction)
        self.speed = float(speed)
        self.approach_height = float(approach_height)
        self.release_height = float(release_height)
        self.finger_closed = float(finger_closed)
        self.finger_open = float(finger_open)
        self.finger_velocity = float(finger_velocity)
        self.damping = float(damping)
        self.reset()

    def reset(self) -> None:
        """Back to ``approach`` with the gripper closed (holding the treat)."""
        self.phase = PHASES[0]
        self._finger = self.finger_closed

    @property
    def done(self) -> bool:
        return self.phase == "done"

    @property
    def max_step(self) -> NDArray[np.float64]:
        """Largest arm joint change per tick [rad] (caller's order)."""
        return self.max_velocity_fraction * self.velocity * self.dt

    def goal(self) -> NDArray[np.float64]:
        """Where the TCP is headed in the current phase (world xyz)."""
        height = self.approach_height if self.phase == "approach" else self.release_height
        return self.scene.target_position + np.array([0.0, 0.0, height])

    def __call__(self, positions: ArrayLike) -> NDArray[np.float64]:
        return self.next_target(positions)

    def next_target(self, positions: ArrayLike) -> NDArray[np.float64]:
        """The next target (8,) in ``joint_names`` order from measured ``positions``.

        ``positions``: the 7 arm joints in ``arm_joint_names`` order, optionally followed
        by the finger position (then the finger target starts from it).
        """
        pos = np.asarray(positions, dtype=np.float64).reshape(-1)
        if pos.shape[0] < 7:
            raise ValueError(f"need at least 7 joint positions, got {pos.shape[0]}")
        arm = pos[:7]
        q = np.empty(7)
        q[self._fk] = arm
        tcp = forward_kinematics(q)[TCP_INDEX][:3, 3]

        # phase changes
        if self.phase == "approach" and np.linalg.norm(self.goal() - tcp) < 0.02:
            self.phase = "descend"
        if self.phase == "descend" and np.linalg.norm(self.goal() - tcp) < 0.01:
            self.phase = "release"
        if self.phase == "release" and self._finger >= self.finger_open - 1e-9:
            self.phase = "done"

        # arm: a straight-line Cartesian step, then a damped-least-squares joint step
        error = self.goal() - tcp
        dist = float(np.linalg.norm(error))
        reach = self.speed * self.dt
        waypoint = tcp + (error if dist <= reach else error * (reach / dist))
        dq_fk = ik_step(q, waypoint, gain=1.0, damping=self.damping, posture=READY_POSE, posture_gain=0.05)
        dq = dq_fk[self._fk]
        limit = self.max_step
        dq = dq * min(1.0, float(np.min(limit / np.maximum(np.abs(dq), 1e-12))))
        if self.noise > 0:
            dq = dq + self.rng.normal(0.0, self.noise, 7)
        dq = np.clip(dq, -limit, limit)
        arm_target = np.clip(arm + dq, self.lower, self.upper)

        # finger: closed until released, then opens at the allowed rate
        if pos.shape[0] >= 8 and self.phase == "approach":
            self._finger = float(pos[7])
        want = self.finger_open if self.phase in ("release", "done") else self.finger_closed
        finger_step = self.max_velocity_fraction * self.finger_velocity * self.dt
        self._finger += float(np.clip(want - self._finger, -finger_step, finger_step))
        return np.append(arm_target, self._finger)
