"""The safety checker: watches what leaves the policy node and counts every unsafe command.

It subscribes, like any other node, to the command topic and the gripper topic, the enable
topic, the node's diagnostics and the joint states the node is fed, and counts:

* ``outside_limits``: a commanded joint outside its ``[lower, upper]``;
* ``step_too_large``: a joint moved further than ``max_velocity_fraction * velocity * period``
  from its reference: the previous command when it came one tick before, otherwise (the
  first command after a hold) the measured position the node was fed;
* ``outside_workspace``: the TCP of the commanded joints (forward kinematics of the spec's
  DH rows) outside the box or a keep-out plane, further out than its reference was;
* ``non_finite``: NaN or inf in a command;
* ``while_disabled``: a command while the last enable message said false (or before any);
* ``holds_unexplained``: a stretch of ticks without commands while enabled, in which the
  node never reported a hold with a reason (its safety events, sampled every tick).

Between processes the checker only sees what arrives. Given ``node_counts`` (the node's own
tick and command counters), a gap in which the node kept publishing commands is a late
delivery (``late_deliveries``), and one in which the node did not tick at all is a stalled
control loop (``stalled_loops``): the robot keeps its last command, and neither is a hold.
Both are reported beside the counts, not hidden in them.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

import numpy as np

from hpt_ros.ros.transport import QOS_DEFAULT, Transport
from hpt_ros.runtime.kinematics import DHChain
from hpt_ros.runtime.workspace import Workspace
from hpt_ros.spec import RobotSpec

__all__ = ["COUNTS", "SafetyChecker"]

COUNTS = ("outside_limits", "step_too_large", "outside_workspace", "non_finite", "while_disabled",
          "holds_unexplained")
_TOLERANCE = 1e-6


class SafetyChecker:
    """Counts unsafe commands of the policy node (see the module docstring).

    ``hold_reason()`` returns the node's current hold reason ('' while commanding): the
    newest of its safety events. ``measured_topic`` is the joint-state topic the node reads.
    ``recent_states`` > 1 accepts, for a first command, any of that many latest states as its
    reference (between processes the checker cannot know which one the node had).
    """

    def __init__(self, transport: Transport, spec: RobotSpec, measured_topic: str, hold_reason: Callable[[], str],
                 *, recent_states: int = 1, node_counts: Callable[[], tuple[int, int]] | None = None):
        self.transport = transport
        self.node_counts = node_counts
        self._node_sample: tuple[int, int] | None = None  # the node's (ticks, commands) at the last tick
        self._gap_node_commanding = self._gap_node_stalled = False
        self.late_deliveries = 0
        self.stalled_loops = 0
        self.spec = spec
        self.period = spec.period_s
        self.hold_reason = hold_reason
        action = spec.action
        self.arm_joints = list(action.arm_joints)
        lower, upper, velocity = spec.joint_limits_arrays(tuple(action.joints))
        self.lower, self.upper = lower, upper
        self.max_step = spec.safety.max_velocity_fraction * velocity * self.period
        self.arm_index = [list(action.joints).index(j) for j in self.arm_joints]
        self.gripper_index = list(action.joints).index(action.gripper.joint) if action.gripper else None
        self.workspace = Workspace.from_spec(spec)
        kin = spec.workspace.kinematics if spec.workspace is not None else None
        self.chain = DHChain.from_spec(kin) if kin is not None else None
        self.chain_index = [self.arm_joints.index(j) for j in kin.joints] if kin is not None else []
        self.counts = dict.fromkeys(COUNTS, 0)
        self.examples: list[str] = []
        self.commands = 0
        self.enabled: bool | None = None
        self._enable_since: float | None = None
        self._states: deque[dict[str, float]] = deque(maxlen=max(1, recent_states))
        self._last: dict[str, tuple[float, np.ndarray]] = {}  # stream -> (time, last command)
        self._last_any_command: float | None = None
        self._gap_open = self._gap_reason_seen = False
        self.hold_reasons: dict[str, int] = {}
        self.diagnostic_states: dict[str, int] = {}
        transport.create_subscription(action.command.topic, action.command.type, self._on_command, QOS_DEFAULT)
        if action.gripper is not None:
            transport.create_subscription(action.gripper.topic, action.gripper.type, self._on_gripper, QOS_DEFAULT)
        transport.create_subscription(spec.safety.enable_topic, "std_msgs/msg/Bool", self._on_enable, QOS_DEFAULT)
        transport.create_subscription(measured_topic, "sensor_msgs/msg/JointState", self._on_state, QOS_DEFAULT)
        transport.create_subscription("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", self._on_diagnostics,
                                      QOS_DEFAULT)
        transport.create_timer(self.period, self._on_tick, group="chaos")

    # -- inputs ----------------------------------------------------------------------------------
    def _on_enable(self, msg: Any) -> None:
        now = self.transport.now()
        enabled = bool(msg.data)
        if enabled and not self.enabled:
            self._enable_since = now
        if not enabled:  # ticks without commands while disabled need no reason
            self._gap_open = self._gap_reason_seen = False
        self.enabled = enabled

    def _on_state(self, msg: Any) -> None:
        values = dict(zip(list(msg.name), np.asarray(msg.position, dtype=np.float64).tolist()))
        if all(j in values and np.isfinite(values[j]) for j in self.spec.state_joints):
            self._states.append(values)

    def _on_diagnostics(self, msg: Any) -> None:
        for status in msg.status:
            for kv in status.values:
                if kv.key == "safety_state":
                    state = str(kv.value).split(":")[0]
                    self.diagnostic_states[state] = self.diagnostic_states.get(state, 0) + 1

    def _on_command(self, msg: Any) -> None:
        if not len(msg.points):
            return self._violation("non_finite", "a trajectory without points")
        by_name = dict(zip(list(msg.joint_names), np.asarray(msg.points[-1].positions, dtype=np.float64).tolist()))
        arm = np.array([by_name.get(j, np.nan) for j in self.arm_joints])
        refs = self._references("arm", self.arm_index, self.transport.now())
        self._check("arm", arm, self.arm_index)
        if self.chain is not None and self.workspace is not None and np.isfinite(arm).all():
            self._check_workspace(arm, refs)

    def _on_gripper(self, msg: Any) -> None:
        data = np.asarray(msg.data, dtype=np.float64)[:1]
        if self.gripper_index is not None:
            self._check("gripper", data, [self.gripper_index])

    # -- checks ----------------------------------------------------------------------------------
    def _violation(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        if len(self.examples) < 20:
            self.examples.append(f"t={self.transport.now():.3f} {kind}: {detail}")

    def _references(self, stream: str, index: list[int], now: float) -> list[np.ndarray]:
        last = self._last.get(stream)
        if last is not None and now - last[0] <= 1.5 * self.period:
            return [last[1]]
        joints = [self.spec.action.joints[i] for i in index]
        refs = [np.array([s.get(j, np.nan) for j in joints]) for s in self._states]
        return [r for r in refs if np.isfinite(r).all()] or ([last[1]] if last is not None else [])

    def _check(self, stream: str, values: np.ndarray, index: list[int]) -> None:
        now = self.transport.now()
        self.commands += stream == "arm"
        if stream == "arm":
            self._last_any_command = now
        if not self.enabled:
            self._violation("while_disabled", f"{stream} command while disabled")
        if not np.isfinite(values).all():
            self._violation("non_finite", f"{stream} {values.tolist()}")
            return
        lower, upper, step = self.lower[index], self.upper[index], self.max_step[index]
        if (values < lower - _TOLERANCE).any() or (values > upper + _TOLERANCE).any():
            self._violation("outside_limits", f"{stream} {np.round(values, 4).tolist()}")
        refs = self._references(stream, index, now)
        if refs and not any((np.abs(values - r) <= step + _TOLERANCE).all() for r in refs):
            worst = min(float(np.max(np.abs(values - r) - step)) for r in refs)
            self._violation("step_too_large", f"{stream} exceeds the step limit by {worst:.4g}")
        self._last[stream] = (now, values)

    def _check_workspace(self, arm: np.ndarray, refs: list[np.ndarray]) -> None:
        """Outside is allowed only no further out than the reference (an arm that starts outside may come back)."""
        outside, name = self.workspace.violation(self.chain.tcp_position(arm[self.chain_index]))
        if outside <= _TOLERANCE:
            return
        ref_out = max((self.workspace.violation(self.chain.tcp_position(r[self.chain_index]))[0] for r in refs),
                      default=0.0)
        if outside > ref_out + _TOLERANCE:
            self._violation("outside_workspace", f"TCP {outside * 1000:.1f} mm beyond {name}")

    def _on_tick(self) -> None:
        """Once per control period: a tick without a command while enabled opens a gap; the gap
        is explained when the node reports a hold reason at some tick of it."""
        now = self.transport.now()
        previous, self._node_sample = self._node_sample, (self.node_counts() if self.node_counts else None)
        if not self.enabled or self._enable_since is None or now - self._enable_since < 1.5 * self.period:
            return
        recent = self._last_any_command is not None and now - self._last_any_command <= 1.5 * self.period
        if recent:
            self._close_gap()
            return
        if previous is not None and self._node_sample is not None:
            self._gap_node_commanding |= self._node_sample[1] > previous[1]
            self._gap_node_stalled |= self._node_sample[0] == previous[0]
        self._gap_open = True
        reason = self.hold_reason()
        if reason:
            self._gap_reason_seen = True
            key = reason.split(":")[0]
            self.hold_reasons[key] = self.hold_reasons.get(key, 0) + 1

    def _close_gap(self) -> None:
        if self._gap_open and not self._gap_reason_seen:
            if self._gap_node_commanding:
                self.late_deliveries += 1  # the node kept commanding; its commands arrived late
            elif self._gap_node_stalled:
                self.stalled_loops += 1  # the node's loop did not run: nothing was decided, nothing held
            else:
                self._violation("holds_unexplained", "ticks without commands and without a hold reason")
        self._gap_open = self._gap_reason_seen = False
        self._gap_node_commanding = self._gap_node_stalled = False

    def finish(self) -> dict[str, int]:
        """The counts, judging a gap still open at the end of the run."""
        self._close_gap()
        return dict(self.counts)
