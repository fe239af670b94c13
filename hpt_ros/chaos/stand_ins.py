"""What surrounds the policy node in a chaos run: a policy that tries to break the limits, an
engine wrapper that fails or stalls on plan, a clock that jumps, and an enable switch.

All of them act from outside the node: the node gets them as its engine, its transport
and its enable topic, exactly as it would get a real engine, ROS clock and deadman switch.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np

from hpt_ros.engine.base import Engine
from hpt_ros.ros.transport import QOS_DEFAULT, Transport
from hpt_ros.spec import RobotSpec

from .faults import Fault

__all__ = ["AdversarialEngine", "EnableSwitch", "FaultyEngine", "JumpingClockTransport"]


class AdversarialEngine(Engine):
    """A stand-in policy that aims at the safety filter: each chunk is drawn from targets far
    beyond the joint limits, large jumps from the measured state, a dive toward the table,
    or (now and then) NaN / inf. Seeded, and cheap (no network), so runs stay short."""

    backend = "chaos"

    def __init__(self, spec: RobotSpec, rng: np.random.Generator):
        self.spec = spec
        self.rng = rng
        self.horizon = spec.action.horizon
        self.action_dim = spec.action.dim
        self.state_dim = spec.state_dim
        self.num_views = spec.num_views
        lower, upper, _ = spec.joint_limits_arrays(tuple(spec.action.joints))
        self.lower, self.upper = lower, upper
        self.state_index = [list(spec.state_joints).index(j) if j in spec.state_joints else -1
                            for j in spec.action.joints]
        self.modes: dict[str, int] = {}

    def predict(self, images: np.ndarray, state: np.ndarray) -> np.ndarray:
        measured = np.array([state[0, i] if i >= 0 else 0.0 for i in self.state_index], dtype=np.float64)
        mode = str(self.rng.choice(["beyond_limits", "jump", "toward_table", "drift", "non_finite"],
                                   p=[0.25, 0.25, 0.25, 0.2, 0.05]))
        self.modes[mode] = self.modes.get(mode, 0) + 1
        span = self.upper - self.lower
        if mode == "beyond_limits":
            target = self.rng.uniform(self.lower - 0.5 * span, self.upper + 0.5 * span)
        elif mode == "jump":
            target = measured + self.rng.normal(0.0, 1.0, self.action_dim)
        elif mode == "toward_table":  # shoulder forward, elbow open: the hand goes down into the table
            target = measured.copy()
            target[1] = self.upper[1] + 0.3
            target[3] = self.upper[3] + 0.3
            target[5] = self.lower[5]
        elif mode == "drift":
            target = measured + self.rng.normal(0.0, 0.05, self.action_dim)
        else:
            target = measured.copy()
            target[int(self.rng.integers(0, self.action_dim))] = float(self.rng.choice([np.nan, np.inf, -np.inf]))
        steps = np.linspace(0.0, 1.0, self.horizon)[:, None]
        with np.errstate(invalid="ignore"):  # inf - inf in the non-finite chunks, on purpose
            chunk = measured[None, :] + steps * (target - measured)[None, :]
        return chunk[None].astype(np.float32)


class FaultyEngine(Engine):
    """``inner``, but raising during ``inference_exception`` faults and sleeping (wall time) during
    ``inference_slowdown`` ones; ``run_time()`` says where in the run we are."""

    def __init__(self, inner: Engine, plan: list[Fault], run_time: Callable[[], float]):
        self.inner = inner
        self.plan = plan
        self.run_time = run_time
        self.backend, self.precision = inner.backend, inner.precision
        self.horizon, self.action_dim = inner.horizon, inner.action_dim
        self.state_dim, self.num_views = inner.state_dim, inner.num_views
        self.counts: dict[str, int] = {}

    def _active(self, kind: str) -> Fault | None:
        t = self.run_time()
        return next((f for f in self.plan if f.kind == kind and f.active(t)), None)

    def predict(self, images: np.ndarray, state: np.ndarray) -> np.ndarray:
        if self._active("inference_exception") is not None:
            self.counts["inference_exception"] = self.counts.get("inference_exception", 0) + 1
            raise RuntimeError("injected inference failure")
        slow = self._active("inference_slowdown")
        if slow is not None:
            self.counts["inference_slowdown"] = self.counts.get("inference_slowdown", 0) + 1
            time.sleep(float(slow.params.get("sleep_s", 0.05)))
        return self.inner.predict(images, state)

    def warmup(self, height: int = 480, width: int = 640, iterations: int = 2) -> None:
        pass


class JumpingClockTransport:
    """The node's transport with a clock that jumps: ``now()`` = the transport's time + the sum of
    the clock jumps of the plan that have happened (back: negative). Everything else is the
    transport's own, so timers still fire on the real grid, as they do when a ``/clock``
    publisher restarts or skips."""

    def __init__(self, inner: Transport, plan: list[Fault], start_time: float):
        self._inner = inner
        self._jumps = [(start_time + f.start, -f.params["jump_s"] if f.kind == "clock_jump_back" else f.params["jump_s"])
                       for f in plan if f.kind in ("clock_jump_back", "clock_jump_forward")]
        self.jumps_applied = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _offset(self, t: float) -> float:
        passed = [shift for at, shift in self._jumps if t >= at]
        self.jumps_applied = max(self.jumps_applied, len(passed))
        return float(sum(passed))

    def now(self) -> float:
        t = self._inner.now()
        return t + self._offset(t)

    def now_ns(self) -> int:
        return int(round(self.now() * 1e9))


class EnableSwitch:
    """Publishes the enable topic: on at the start, off during each ``enable_toggle`` fault."""

    def __init__(self, transport: Transport, spec: RobotSpec, plan: list[Fault], start_time: float, period_s: float = 0.05):
        self.transport = transport
        self.plan = [f for f in plan if f.kind == "enable_toggle"]
        self.start_time = start_time
        self.pub = transport.create_publisher(spec.safety.enable_topic, "std_msgs/msg/Bool", QOS_DEFAULT)
        self.state: bool | None = None
        self.toggles = 0
        transport.create_timer(period_s, self._tick, group="chaos")

    def _tick(self) -> None:
        t = self.transport.now() - self.start_time
        wanted = not any(f.active(t) for f in self.plan)
        if wanted != self.state:
            if self.state is not None and not wanted:
                self.toggles += 1
            self.state = wanted
            msg = self.transport.new_message("std_msgs/msg/Bool")
            msg.data = wanted
            self.pub.publish(msg)
