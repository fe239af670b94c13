"""The scripted feed-the-dog expert: pick the treat, carry it over the bowl, drop it.

Stands in for a person with a space mouse when recording demonstrations. It sees what a
person would (where the treat and the bowl are) and, one control tick at a time, turns
the measured joint positions into the next joint target (7 arm joints + the finger):

``approach`` (TCP above the treat) -> ``descend`` (fingers around it) -> ``grasp`` (close)
-> ``lift`` -> ``carry`` (above the bowl) -> ``release`` (open) -> ``done`` (hold above).
It can take over from any state (a policy's, for DAgger-style data): the first tick picks
the phase from the measured pose (holding the treat, low near it, or anywhere else).

The TCP reference moves along straight lines at ``speed`` m/s; each tick's joint target
is the reference pose solved by damped-least-squares IK (``kinematics.ik_step``, tool
pointing down), limited to ``max_velocity_fraction`` of the velocity limits, the same
step the policy node's safety filter allows. It reacts to what happens: a treat that
slips out (the fingers close on nothing) sends it back to ``approach`` at the treat's
new place.

Recovery data (DART-style): with ``noise`` > 0 the published arm targets carry Gaussian
noise [rad] and, in a few random ticks, a larger ``perturbation`` that the arm follows;
the reference itself stays clean, so the next targets are the expert's correction from
wherever the noise pushed the arm. A policy trained on these sees off-path states
paired with the way back. With ``approach_error`` > 0 it lines up over the treat only
roughly (an offset of up to that many metres, in a random direction, drawn each time it
approaches) and corrects on the way down, as the wrist camera would show a person: the
descent ends over the treat itself, so the data pairs low, off-centre views of the treat
with the move that centres it. With ``missed_grasp`` > 0 that share of episodes makes its
first grasp ``miss_distance`` m (drawn from the range, in a random direction) beside the
treat, so the fingers close on nothing or nudge it, and recovers as it would from a slip:
the data then shows what a policy's own missed grasp looks like and the way back to the
treat.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray

from .kinematics import READY_POSE, forward_kinematics, ik_step, TCP_INDEX
from .mjcf import TREAT_HALF_HEIGHT, inside_bowl

__all__ = ["FeedDogExpert", "PHASES"]

PHASES = ("approach", "descend", "grasp", "lift", "carry", "release", "done")
FINGER_OPEN = 0.04


def _planar(radius: float, angle: float) -> NDArray[np.float64]:
    """A horizontal offset [m] of ``radius`` in direction ``angle``."""
    return np.array([radius * np.cos(angle), radius * np.sin(angle), 0.0])


class FeedDogExpert:
    """Joint targets, one tick at a time. ``lower``/``upper``/``velocity``: 7 arm joints, then the finger."""

    def __init__(
        self,
        lower: ArrayLike,
        upper: ArrayLike,
        velocity: ArrayLike,
        *,
        rate_hz: float = 15.0,
        max_velocity_fraction: float = 0.5,
        rng: np.random.Generator | int | None = 0,
        noise: float = 0.0,
        perturbation: float = 0.0,
        speed: float = 0.22,
        hover_height: float = 0.12,
        grasp_height: float = 0.022,
        carry_height: float = 0.16,
        release_height: float = 0.09,
        approach_error: float = 0.0,
        missed_grasp: float = 0.0,
        miss_distance: tuple[float, float] = (0.02, 0.035),
    ) -> None:
        self.lower = np.asarray(lower, dtype=np.float64).reshape(8)
        self.upper = np.asarray(upper, dtype=np.float64).reshape(8)
        self.velocity = np.asarray(velocity, dtype=np.float64).reshape(8)
        self.dt = 1.0 / float(rate_hz)
        self.max_step = float(max_velocity_fraction) * self.velocity * self.dt
        self.rng = rng if isinstance(rng, np.random.Generator) else np.random.default_rng(rng)
        self.noise = float(noise)
        self.perturbation = float(perturbation)
        self.speed = float(speed)
        self.hover_height = float(hover_height)
        self.grasp_height = float(grasp_height)
        self.carry_height = float(carry_height)
        self.release_height = float(release_height)
        self.approach_error = float(approach_error)
        if not 0.0 <= float(missed_grasp) <= 1.0:
            raise ValueError(f"missed_grasp is a share of episodes in [0, 1], got {missed_grasp}")
        if not 0.0 < miss_distance[0] <= miss_distance[1]:
            raise ValueError(f"miss_distance must be a range (low, high) with 0 < low <= high, got {miss_distance}")
        self.missed_grasp = float(missed_grasp)
        self.miss_distance = (float(miss_distance[0]), float(miss_distance[1]))
        self.reset()

    def reset(self) -> None:
        self.phase = PHASES[0]
        self._ref_q: NDArray[np.float64] | None = None
        self._ref_tcp: NDArray[np.float64] | None = None
        self._finger = FINGER_OPEN
        self._phase_ticks = 0
        self.regrasps = 0
        self._approach_offset = self._draw_offset()
        self._grasp_offset = self._draw_miss()

    def _draw_miss(self) -> NDArray[np.float64]:
        """Where this episode's first grasp closes, relative to the treat [m]: beside it with
        probability ``missed_grasp``, else on it (no draw when off, so other streams stay the same)."""
        if self.missed_grasp <= 0 or self.rng.random() >= self.missed_grasp:
            return np.zeros(3)
        angle = self.rng.uniform(-np.pi, np.pi)
        return _planar(self.rng.uniform(*self.miss_distance), angle)

    def _draw_offset(self) -> NDArray[np.float64]:
        """Where the next approach lines up, relative to the treat [m] (uniform on a disc)."""
        if self.approach_error <= 0:
            return np.zeros(3)
        angle = self.rng.uniform(-np.pi, np.pi)
        return _planar(self.approach_error * np.sqrt(self.rng.uniform()), angle)

    @property
    def done(self) -> bool:
        return self.phase == "done"

    def _goal(self, treat: NDArray[np.float64], bowl_xy: Sequence[float]) -> NDArray[np.float64]:
        bowl = np.array([bowl_xy[0], bowl_xy[1], 0.0])
        if self.phase == "approach":
            return np.array([treat[0], treat[1], self.hover_height]) + self._approach_offset
        if self.phase in ("descend", "grasp"):
            return np.array([treat[0], treat[1], self.grasp_height]) + self._grasp_offset
        if self.phase == "lift":
            assert self._ref_tcp is not None
            return np.array([self._ref_tcp[0], self._ref_tcp[1], self.carry_height])
        if self.phase == "carry":
            return bowl + [0.0, 0.0, self.carry_height]
        return bowl + [0.0, 0.0, self.release_height]

    def _takeover_phase(self, tcp: NDArray[np.float64], finger: float, treat: NDArray[np.float64],
                        bowl_xy: Sequence[float]) -> str:
        """The phase to start in from wherever the arm is (the reset pose, or a policy's state when
        the expert takes over): the treat already in the bowl -> ``done`` (hold above the bowl:
        the dog is fed, nothing to pick up again); closing over the treat but above the grasp
        height -> ``descend`` (open, go down around it); holding the treat -> ``lift``; low, fingers
        open and near it -> ``descend``, which centres on the treat on the way down (a policy's
        drift while descending is corrected where it happens); otherwise ``approach`` (which
        first rises to the hover height above the treat)."""
        if inside_bowl(treat, bowl_xy):
            return "done"
        off = float(np.linalg.norm(tcp[:2] - treat[:2]))
        closing = 0.006 < finger < 0.03
        on_table = treat[2] < TREAT_HALF_HEIGHT + 0.003
        if closing and on_table and off < 0.012 and tcp[2] > self.grasp_height + 0.005:
            # closing above the grasp height: such a grip holds the treat by its top edge and
            # loses it on the way up, so open again and go down around it first
            return "descend"
        if closing and float(np.linalg.norm(tcp - treat)) < 0.03:
            return "lift"
        low = self.grasp_height < tcp[2] < self.hover_height - 0.01
        # centring while descending moves no more sideways than down (the fingertips stay
        # above the treat until they are around it), and never from more than 4 cm off
        centring = off < min(0.04, tcp[2] - self.grasp_height) and finger > 0.03
        if low and (off < 0.012 or centring):
            return "descend"
        return "approach"

    def _advance(self, reached: bool, finger: float) -> None:
        """Phase changes from the reference having reached its goal and the measured finger."""
        self._phase_ticks += 1
        nxt = None
        if self.phase == "descend" and self._finger < FINGER_OPEN:
            reached = False  # (taken over with the fingers half closed) open before grasping again
        if self.phase in ("approach", "descend", "carry") and reached:
            nxt = {"approach": "descend", "descend": "grasp", "carry": "release"}[self.phase]
        elif self.phase == "grasp" and self._finger <= max(finger - 0.008, 0.0) and self._phase_ticks * self.dt > 0.2:
            # the fingers stopped on the treat and the command squeezes it
            nxt = "lift"
        elif self.phase == "lift" and reached:
            nxt = "carry"
        elif self.phase == "release" and finger > 0.03:
            nxt = "done"
        if self.phase in ("lift", "carry") and finger < 0.006:  # closed on nothing: the treat is not in hand
            nxt, self.regrasps = "approach", self.regrasps + 1
        if nxt is not None:
            self.phase, self._phase_ticks = nxt, 0
            if nxt == "approach":
                self._approach_offset = self._draw_offset()
                self._grasp_offset = np.zeros(3)  # only the first grasp misses

    def next_target(self, positions: ArrayLike, treat: ArrayLike, bowl_xy: Sequence[float]) -> NDArray[np.float64]:
        """The next target (8,) from the measured ``positions`` (7 arm joints + finger), the treat and the bowl."""
        pos = np.asarray(positions, dtype=np.float64).reshape(-1)
        if pos.shape[0] < 8:
            raise ValueError(f"need 7 arm joints and the finger, got {pos.shape[0]} positions")
        treat = np.asarray(treat, dtype=np.float64).reshape(3)
        if self._ref_q is None:
            self._ref_q = pos[:7].copy()
            self._ref_tcp = forward_kinematics(self._ref_q)[TCP_INDEX][:3, 3].copy()
            self.phase = self._takeover_phase(self._ref_tcp, float(pos[7]), treat, bowl_xy)
            self._finger = float(np.clip(pos[7], 0.0, FINGER_OPEN))
        assert self._ref_tcp is not None
        goal = self._goal(treat, bowl_xy)
        error = goal - self._ref_tcp
        dist = float(np.linalg.norm(error))
        speed = self.speed * (0.5 if self.phase in ("descend", "lift") else 1.0)
        reach = speed * self.dt
        self._ref_tcp = self._ref_tcp + (error if dist <= reach else error * (reach / dist))
        tcp_measured = forward_kinematics(pos[:7])[TCP_INDEX][:3, 3]
        reached = dist < 1e-3 and float(np.linalg.norm(tcp_measured - goal)) < 0.012
        self._advance(reached, float(pos[7]))

        # the clean reference: IK iterations from the previous reference toward the reference pose
        q = self._ref_q.copy()
        for _ in range(3):
            q = q + ik_step(q, self._ref_tcp, gain=1.0, damping=0.03, posture=READY_POSE, posture_gain=0.1)
        step = np.clip(q - self._ref_q, -self.max_step[:7], self.max_step[:7])
        self._ref_q = np.clip(self._ref_q + step, self.lower[:7], self.upper[:7])

        # the finger ramps toward open or closed at the allowed rate
        want = 0.0 if self.phase in ("grasp", "lift", "carry") else FINGER_OPEN
        self._finger += float(np.clip(want - self._finger, -self.max_step[7], self.max_step[7]))

        arm = self._ref_q.copy()
        # like a careful operator, it shakes less with the fingers at the treat
        care = 0.25 if self.phase in ("descend", "grasp", "lift") else 1.0
        if self.noise > 0:
            arm = arm + self.rng.normal(0.0, care * self.noise, 7)
        if self.perturbation > 0 and self.rng.random() < 0.03:
            arm = arm + self.rng.normal(0.0, care * self.perturbation, 7)
        # never a bigger jump from the measured pose than the safety filter would allow
        arm = np.clip(arm, pos[:7] - 2 * self.max_step[:7], pos[:7] + 2 * self.max_step[:7])
        arm = np.clip(arm, self.lower[:7], self.upper[:7])
        return np.append(arm, self._finger)
