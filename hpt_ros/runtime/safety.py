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

ee_pose / ee_twist:

* ee_pose ``x y z roll pitch yaw``: NaN check and a per-axis step clamp of
  ``max_velocity_fraction * CartesianLimits.{linear,angular}_speed * period`` relative to
  the last command (angle differences wrapped to [-pi, pi)). The first pose after
  activation is stepped from the measured pose: forward kinematics of the measured
  joints (``filter(..., state=)``) when the spec has ``workspace.kinematics``; without
  it, that first pose is passed unclamped (a warning at construction says so).
* ee_twist ``vx vy vz wx wy wz``: each axis clamped to
  ``+-max_velocity_fraction * CartesianLimits.*_speed``, and its change per tick to
  ``max_velocity_fraction * CartesianLimits.*_accel * period``, starting from a zero twist
  on activation (a held robot is at rest).
* a gripper dim (last) is treated as a joint if ``spec.limits`` lists it.

Workspace (``spec.workspace``: a box and keep-out planes for the TCP, see
``hpt_ros.runtime.workspace``), applied after the clamps above:

* joint_position: the TCP of the commanded joints (forward kinematics) must stay inside.
  A command that would leave is CLAMPED, not held: the arm joints' step from the
  reference is shortened (bisection) to the last point inside, so a policy pushing into
  the table stops at the table and keeps commanding (a hold would re-activate from the
  measured state on every tick it leans on the limit, resetting its chunks each time).
  From a reference outside (an arm parked outside the box), steps that go no further
  out pass, so it can come back. With no reference for the arm joints (never measured,
  never commanded), a target outside is held (``'workspace: ...'``).
* ee_pose: the position is clamped into the workspace (stepping along the segment from
  the reference when that reference is itself outside).
* ee_twist: the linear velocity loses the part that would carry the measured TCP out of
  the workspace within one period; without measured joints it holds.

``SafetyResult.limit`` names the half-space that acted (``'table'``, ``'box z max'``);
its onset is logged once.
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

from .workspace import Workspace

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
        limit: the workspace half-space that limited the command ('' if none).
    """

    command: np.ndarray | None
    held: bool
    reason: str = ""
    hold_position: np.ndarray | None = None
    clamped: bool = False
    activated: bool = False
    limit: str = ""


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

        self.period = period
        self.workspace = Workspace.from_spec(spec)
        kinematics = spec.workspace.kinematics if spec.workspace is not None else None
        joints_of = action.joints if self.kind == "joint_position" else state_joints
        self._kinematic_index = (None if kinematics is None else
                                 np.array([joints_of.index(j) for j in kinematics.joints], dtype=np.intp))
        if self.kind == "ee_pose" and kinematics is None:
            logger.warning("ee_pose without workspace.kinematics in the spec: the first pose after activation cannot "
                           "be stepped from the measured pose and is sent as predicted")  # fmt: skip

        self._lock = threading.RLock()
        self._limit = ""
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

    def filter(self, action: np.ndarray, measured: np.ndarray | None, now: float, *,
               state: np.ndarray | None = None) -> SafetyResult:
        """The command for ``action`` [action_dim], or a hold.

        ``measured``: the robot's current value of each action dim (NaN or None: unknown),
        e.g. ``measured_from_state(observation.state)``; used on (re)activation.
        ``state``: the measured state in ``spec.state_joints`` order; end-effector actions
        get the measured TCP from it (forward kinematics of ``workspace.kinematics``).
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
            tcp = self._measured_tcp(state)
            if activated:
                ref = np.full(a.shape, np.nan) if measured is None else np.asarray(measured, dtype=np.float64).copy()
                if self.kind == "ee_pose" and tcp is not None:
                    ref[:6] = np.where(np.isfinite(ref[:6]), ref[:6], tcp)
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
            limit = ""
            if self.workspace is not None:
                command, limit, hold = self._limit_workspace(command, ref, tcp)
                if hold:
                    return self._hold_locked(hold, now)
            self._note_limit(limit, now)
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
            return SafetyResult(command.copy(), False, "", None, clamped, activated, limit)

    # -- internals -------------------------------------------------------------
    def _measured_tcp(self, state: np.ndarray | None) -> np.ndarray | None:
        """x y z roll pitch yaw of the measured TCP (ee kinds with kinematics), or None."""
        ws = self.workspace
        if self.kind == "joint_position" or state is None or ws is None or ws.chain is None:
            return None
        q = np.asarray(state, dtype=np.float64)[self._kinematic_index]
        return ws.chain.tcp_xyz_rpy(q) if np.isfinite(q).all() else None

    def _limit_workspace(self, command: np.ndarray, ref: np.ndarray,
                         tcp: np.ndarray | None) -> tuple[np.ndarray, str, str]:
        """(command kept inside the workspace, the half-space that acted, a hold reason or '')."""
        ws = self.workspace
        assert ws is not None
        command = command.copy()
        if self.kind == "joint_position":
            assert ws.chain is not None and self._kinematic_index is not None
            k = self._kinematic_index
            ref_q = ref[k]
            if not np.isfinite(ref_q).all():
                worst, name = ws.violation(ws.chain.tcp_position(command[k]))
                return command, "", (f"workspace: {name} (no known arm pose to step from)" if worst > 0 else "")
            command[k], limit = ws.limit_step(ref_q, command[k], ws.chain.tcp_position)
            # a measured reference may sit a hair outside the joint limits
            return np.clip(command, self.lower, self.upper), limit, ""
        if self.kind == "ee_pose":
            ref_p = ref[:3]
            if np.isfinite(ref_p).all() and ws.violation(ref_p)[0] > 0:
                command[:3], limit = ws.limit_step(ref_p, command[:3], lambda p: p)
            else:
                command[:3], limit = ws.clamp_point(command[:3])
            return command, limit, ""
        if tcp is None:
            return command, "", "workspace: TCP position unknown (no measured arm joints)"
        command[:3], limit = ws.limit_velocity(tcp[:3], command[:3], self.period)
        return command, limit, ""

    def _note_limit(self, limit: str, now: float) -> None:
        if limit != self._limit:
            if limit:
                logger.warning("workspace limit at t=%.3f: %s", now, limit)
            else:
                logger.info("workspace limit released at t=%.3f (was: %s)", now, self._limit)
            self._limit = limit

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
