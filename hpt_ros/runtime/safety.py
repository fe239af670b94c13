"""The last gate before a command leaves the policy: limits, step size, NaN, enable, hold.

``SafetyFilter(spec)`` works on the action vector in the spec's layout
(``spec.action.joints`` for ``joint_position``). Each control tick ends in exactly one of

* ``filter(action, measured, now)``: the action becomes a command, or a hold
  (``'disabled'``, ``'non-finite action'``);
* ``hold(reason, now)``: the control loop could not produce an action
  (``'stale <sensor>'``, ``'missing <sensor>'``, ``'inference failed: ...'``, ``'no model'``).

A held tick commands nothing that moves: its ``SafetyResult`` has ``command=None`` and
``hold_position`` = the last commanded position (the caller decides whether to publish
it; ``None`` if nothing was ever commanded). For ``ee_twist`` the hold position is a zero
twist (the last gripper value kept), never the last twist.

joint_position, per joint:

1. reject NaN/inf anywhere in the action (hold ``'non-finite action'``);
2. step clamp: ``|command - reference| <= max_velocity_fraction * velocity_limit * period``,
   the reference being the LAST COMMANDED position while commanding, and the MEASURED
   position on the first command after (re)activation (franka_ros2 aborts on a jump, so
   motion always starts from where the robot is). An action joint the state does not
   measure (``measured`` NaN) uses the last command; if it was never commanded, its first
   command is clamped to the limits only (a warning at construction names such joints);
3. position clamp to ``[lower, upper]`` (last, so the command is always inside the limits).

ee_pose / ee_twist (simpler; documented limits, no kinematics here):

* ee_pose ``x y z roll pitch yaw``: NaN check and a per-axis step clamp of
  ``max_velocity_fraction * CartesianLimits.{linear,angular}_speed * period`` relative to
  the last command (angle differences wrapped to [-pi, pi)). The runtime knows no
  measured pose, so the first pose after activation is passed unclamped: the robot's
  Cartesian controller must take care of the approach.
* ee_twist ``vx vy vz wx wy wz``: each axis clamped to
  ``+-max_velocity_fraction * CartesianLimits.*_speed``, and its change per tick to
  ``max_velocity_fraction * CartesianLimits.*_accel * period``, starting from a zero twist
  on activation (a held robot is at rest).
* a gripper dim (last) is treated as a joint if ``spec.limits`` lists it.

Enable: motion only while enabled; with ``spec.safety.require_enable`` the filter starts
disabled. Resumption is automatic when the cause clears; every (re)activation starts from
the measured state again. Each hold (or change of hold reason) and each resume is one
``SafetyEvent``, logged once on ``logging.getLogger("hpt_ros.safety")`` and kept in
``events`` (the newest ``max_events``). A repeat of the same hold reason logs nothing.

Thread safety: ``set_enabled`` may be called from a message callback thread while the
control thread filters; one lock guards the state (held for microseconds).
"""

from __future__ import annotations

import collections
import logging
import math
import threading
from dataclasses import dataclass

import numpy as np

from hpt_ros.spec.schema import RobotSpec

__all__ = ["CartesianLimits", "SafetyEvent", "SafetyFilter", "SafetyResult"]

logger = logging.getLogger("hpt_ros.safety")


@dataclass(frozen=True)
class CartesianLimits:
    """Nominal end-effector limits for ee_pose / ee_twist (scaled by ``max_velocity_fraction``).

    Conservative defaults for a learned policy, well under a Franka's Cartesian limits
    (3 m/s, 2.5 rad/s, 9 m/s^2, 17 rad/s^2).
    """

    linear_speed: float = 0.5  # m/s
    angular_speed: float = 1.0  # rad/s
    linear_accel: float = 2.0  # m/s^2 (ee_twist: change of twist per second)
    angular_accel: float = 4.0  # rad/s^2


@dataclass(frozen=True)
class SafetyEvent:
    """A transition: ``kind`` 'hold' (reason = why) or 'resume' (reason = the hold that cleared)."""

    time: float
    kind: str
    reason: str


@dataclass(frozen=True, eq=False)
class SafetyResult:
    """One tick's outcome.

    Attributes:
        command: float64 [action_dim] to send, or None when held.
        held: True when nothing that moves may be sent.
        reason: the hold reason ('' when commanding).
        hold_position: when held, the position to hold (last command; zero twist for
            ee_twist); None if nothing was ever commanded.
        clamped: the command differs from the action (a limit or step clamp acted).
        activated: this command is the first after (re)activation (referenced to the measured state).
    """

    command: np.ndarray | None
    held: bool
    reason: str = ""
    hold_position: np.ndarray | None = None
    clamped: bool = False
    activated: bool = False


def _wrap(angle: np.ndarray) -> np.ndarray:
    return (angle + math.pi) % (2 * math.pi) - math.pi


class SafetyFilter:
    """Limits, step clamp, NaN rejection, enable gating and hold bookkeeping for one robot."""

    def __init__(self, spec: RobotSpec, cartesian: CartesianLimits | None = None, max_events: int = 1000) -> None:
        self.spec = spec
        self.kind = spec.action.kind
        self.cartesian = cartesian or CartesianLimits()
        action = spec.action
        dim = action.dim
        period = spec.period_s
        fraction = spec.safety.max_velocity_fraction
        inf = np.full(dim, np.inf)
        self.lower = -inf.copy()
        self.upper = inf.copy()
        self.max_step = inf.copy()
        self._angle = np.zeros(dim, dtype=bool)  # step measured on the circle
        self._zero_ref = np.zeros(dim, dtype=bool)  # reference on activation is 0 (twist)
        if self.kind == "joint_position":
            names: list[str | None] = list(action.joints)
        else:
            c = self.cartesian
            names = [None] * 6 + ([action.gripper.joint] if action.gripper else [])
            speed = fraction * np.repeat([c.linear_speed, c.angular_speed], 3)
            if self.kind == "ee_pose":
                self.max_step[:6] = speed * period
                self._angle[3:6] = True
            else:  # ee_twist
                self.lower[:6], self.upper[:6] = -speed, speed
                self.max_step[:6] = fraction * period * np.repeat([c.linear_accel, c.angular_accel], 3)
                self._zero_ref[:6] = True
        for i, name in enumerate(names):
            if name is not None and name in spec.limits:
                limit = spec.limits[name]
                self.lower[i], self.upper[i] = limit.lower, limit.upper
                self.max_step[i] = fraction * limit.velocity * period
        self.names = tuple(names)
        state_joints = spec.state_joints
        self._state_index = np.array([state_joints.index(n) if n in state_joints else -1 for n in names], dtype=np.intp)
        unmeasured = [n for n, k in zip(names, self._state_index) if n is not None and k < 0]
        if unmeasured:
            logger.warning(
                "action joints %s are not in the measured state: after activation they are stepped from the "
                "last command, and their very first command is clamped to the joint limits only",
                ", ".join(unmeasured),
            )  # fmt: skip

        self._lock = threading.RLock()
        self._enabled = not spec.safety.require_enable
        self._active = False
        self._reason = ""
        self._last: np.ndarray | None = None
        self._events: collections.deque[SafetyEvent] = collections.deque(maxlen=max_events)

    # -- state -----------------------------------------------------------------
    @property
    def enabled(self) -> bool:
        return self._enabled

    @property
    def active(self) -> bool:
        """True while commanding (the last tick sent a command)."""
        return self._active

    @property
    def hold_reason(self) -> str:
        """The current hold reason ('' while commanding or before the first tick)."""
        with self._lock:
            return "" if self._active else self._reason

    @property
    def last_command(self) -> np.ndarray | None:
        with self._lock:
            return None if self._last is None else self._last.copy()

    @property
    def events(self) -> list[SafetyEvent]:
        with self._lock:
            return list(self._events)

    def measured_from_state(self, state: np.ndarray) -> np.ndarray:
        """The measured value of each action dim from a state vector in ``spec.state_joints`` order (NaN: unknown)."""
        state = np.asarray(state, dtype=np.float64)
        measured = np.full(len(self.names), np.nan)
        known = self._state_index >= 0
        measured[known] = state[self._state_index[known]]
        return measured

    # -- transitions -----------------------------------------------------------
    def set_enabled(self, enabled: bool, now: float) -> None:
        """Gate motion (the enable topic). Disabling while commanding is a hold event at ``now``."""
        with self._lock:
            enabled = bool(enabled)
            if enabled == self._enabled:
                return
            self._enabled = enabled
            logger.info("motion %s at t=%.3f", "enabled" if enabled else "disabled", now)
            if not enabled and self._active:
                self._hold_locked("disabled", now)

    def reset(self) -> None:
        """Forget the last command: the next command starts from the measured state (e.g. after a clock jump)."""
        with self._lock:
            self._active = False
            self._last = None

    def hold(self, reason: str, now: float) -> SafetyResult:
        """Hold for ``reason`` (a cause found before there was an action)."""
        with self._lock:
            return self._hold_locked(reason, now)

    def filter(self, action: np.ndarray, measured: np.ndarray | None, now: float) -> SafetyResult:
        """The command for ``action`` [action_dim], or a hold.

        ``measured``: the robot's current value of each action dim (NaN or None: unknown),
        e.g. ``measured_from_state(observation.state)``; used on (re)activation.
        """
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        if a.shape != self.lower.shape:
            raise ValueError(f"expected an action of {self.lower.shape[0]} values, found {a.shape[0]}")
        with self._lock:
            if not self._enabled:
                return self._hold_locked("disabled", now)
            if not np.isfinite(a).all():
                return self._hold_locked("non-finite action", now)
            activated = not self._active
            if activated:
                ref = np.full(a.shape, np.nan) if measured is None else np.asarray(measured, dtype=np.float64).copy()
                if self._last is not None:
                    unknown = ~np.isfinite(ref)
                    ref[unknown] = self._last[unknown]
                ref[self._zero_ref] = 0.0
            else:
                assert self._last is not None
                ref = self._last
            delta = a - ref
            delta[self._angle] = _wrap(delta[self._angle])
            stepped = ref + np.clip(delta, -self.max_step, self.max_step)
            command = np.where(np.isfinite(ref), stepped, a)
            command[self._angle] = _wrap(command[self._angle])
            command = np.clip(command, self.lower, self.upper)
            change = command - a
            change[self._angle] = _wrap(change[self._angle])
            clamped = bool(np.any(np.abs(change) > 1e-12))
            self._last = command
            self._active = True
            if activated:
                previous = self._reason or "start"
                self._events.append(SafetyEvent(float(now), "resume", previous))
                logger.info("resume at t=%.3f (was: %s)", now, previous)
                self._reason = ""
            return SafetyResult(command.copy(), False, "", None, clamped, activated)

    # -- internals -------------------------------------------------------------
    def _hold_position(self) -> np.ndarray | None:
        if self._last is None:
            return None
        position = self._last.copy()
        position[self._zero_ref] = 0.0
        return position

    def _hold_locked(self, reason: str, now: float) -> SafetyResult:
        if self._active or reason != self._reason:
            self._events.append(SafetyEvent(float(now), "hold", reason))
            level = logging.INFO if reason == "disabled" else logging.WARNING
            logger.log(level, "hold at t=%.3f: %s", now, reason)
        self._active = False
        self._reason = reason
        return SafetyResult(None, True, reason, self._hold_position())
