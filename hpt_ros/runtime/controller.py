"""The control loop body, shared by the live policy node and offline replay.

``PolicyRuntime.tick(now)`` is one control tick:

1. tick index ``k = round((now - first_tick_time) / period)``, kept strictly increasing:
   a late or skipped timer call shows up as a gap in ``k``, so chunk step ``i`` always
   lands ``i`` periods after its prediction (both executors handle gaps);
   a tick earlier than the previous one (the clock jumped back: sim time looping, a bag
   restarting) resets the runtime (``reset()``: sensors, chunks, safety reference, grid)
   and holds ``'clock jumped back'``; the loop then holds ``'missing ...'`` until every
   sensor has spoken on the new timeline and resumes from the measured state;
2. no engine -> hold ``'no model'``;
3. ``cache.build(now)``; a stale / missing / invalid required sensor -> hold with its reason;
4. on (re)activation (enabled, not commanding yet) the executor is reset, so a command
   never mixes chunks predicted before a hold;
5. if the executor needs it (temporal ensembling: every tick), ``engine.predict`` on a
   batch of one, timed with ``time.perf_counter``; an exception, a wrong shape -> hold
   ``'inference failed: ...'``; NaN/inf in the chunk -> hold ``'non-finite action'``
   (the chunk is not stored);
6. the executor's action for ``k`` goes through ``SafetyFilter.filter`` with the
   measured joints of the observation (action joints matched to state joints by name)
   and the whole measured state (the workspace check's forward kinematics).

Hold reasons have a priority by construction: no model > sensors > inference >
non-finite action > disabled. While disabled, steps 3-6 still run ("dry run"): the result
carries the predicted chunk and the action the policy would take, but no command; a
reason of ``'disabled'`` therefore means "everything else is ready".

Only latency uses the wall clock; everything else uses ``now`` as passed in, so bag
replay on a simulated clock runs the exact same code. ``tick`` and ``reset`` are meant for
one thread (the control timer); ``set_enabled``, ``stats``, ``events`` and
``cache.update`` may be called from others. ``tick`` runs the engine inline: the caller
must not run it on the thread that delivers sensor messages.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hpt_ros.engine.base import Engine
from hpt_ros.spec.schema import RobotSpec

from .chunking import Executor, make_executor
from .errors import NoActionError, ObservationError
from .observation import ObservationCache
from .safety import SafetyEvent, SafetyFilter, SafetyResult

__all__ = ["CLOCK_JUMP_REASON", "PolicyRuntime", "RuntimeStats", "TickResult"]

CLOCK_JUMP_REASON = "clock jumped back"

logger = logging.getLogger("hpt_ros.runtime")


@dataclass(frozen=True, eq=False)
class TickResult:
    """What one control tick decided.

    Attributes:
        tick: tick index on the control grid (see the module docstring).
        time: ``now`` as passed to ``tick``.
        command: float64 [action_dim] to send, or None when held.
        held: True when nothing that moves may be sent.
        reason: hold reason ('' when commanding).
        predicted: the engine's chunk float32 [horizon, action_dim] of this tick (None: no inference ran).
        action: the executor's action for this tick before safety (None when it did not get that far).
        latency_s: engine.predict wall time of this tick [s] (None: no inference ran).
        ages: sensor name -> age [s] at ``time`` (``inf`` if never received).
        hold_position: when held, the position to hold (see ``SafetyResult``).
        clamped: safety changed the action (limits or step).
        activated: first command after (re)activation (referenced to the measured state).
        limit: the workspace half-space that limited the command ('' if none; see ``SafetyFilter``).
    """

    tick: int
    time: float
    command: np.ndarray | None
    held: bool
    reason: str
    predicted: np.ndarray | None = None
    action: np.ndarray | None = None
    latency_s: float | None = None
    ages: dict[str, float] = field(default_factory=dict)
    hold_position: np.ndarray | None = None
    clamped: bool = False
    activated: bool = False
    limit: str = ""


@dataclass(frozen=True)
class RuntimeStats:
    """Counters since start (or ``reset``); latencies and rate over the last ``window`` ticks."""

    ticks: int
    commands: int
    holds: int  # held ticks
    hold_events: int
    inferences: int
    inference_failures: int
    latency_p50_s: float | None
    latency_p99_s: float | None
    rate_hz: float | None  # achieved tick rate, from the tick times passed in
    reason: str  # current hold reason ('' while commanding)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class PolicyRuntime:
    """Observation cache + engine + executor + safety filter, one ``tick(now)`` per control period."""

    def __init__(
        self,
        spec: RobotSpec,
        engine: Engine | None,
        executor: Executor | None = None,
        safety: SafetyFilter | None = None,
        *,
        cache: ObservationCache | None = None,
        window: int = 200,
    ) -> None:
        self.spec = spec
        self.engine = engine
        self.cache = cache if cache is not None else ObservationCache(spec)
        if executor is None:
            executor = make_executor(spec.execution, spec.action.horizon)
        self.executor: Executor = executor
        self.safety = safety if safety is not None else SafetyFilter(spec)
        self.horizon = spec.action.horizon
        self.action_dim = spec.action.dim
        if engine is not None:
            _check_engine(engine, spec)
        self._window = window
        self._stats_lock = threading.Lock()
        self._reset_counters()

    # -- the loop ----------------------------------------------------------------
    def tick(self, now: float) -> TickResult:
        """Run one control tick at time ``now`` [s] on the caller's clock."""
        now = float(now)
        with self._stats_lock:
            previous = self._tick_times[-1] if self._tick_times else None
        jumped = previous is not None and now < previous
        if jumped:
            # values and chunks stamped on the old timeline would look fresh (or from the future) forever
            logger.warning("clock jumped back from t=%.3f to t=%.3f: runtime reset", previous, now)
            self.reset()
        index = self._index(now)
        with self._stats_lock:
            self._ticks += 1
            self._tick_times.append(now)
        if jumped:
            return self._finish(index, now, self.safety.hold(CLOCK_JUMP_REASON, now), self.cache.ages(now))

        if self.engine is None:
            return self._finish(index, now, self.safety.hold("no model", now), self.cache.ages(now))
        try:
            obs = self.cache.build(now)
        except ObservationError as exc:
            return self._finish(index, now, self.safety.hold(exc.reason, now), self.cache.ages(now))

        if self.safety.enabled and not self.safety.active:
            self.executor.reset()  # (re)activation: start from fresh chunks only

        predicted: np.ndarray | None = None
        latency: float | None = None
        if self.executor.needs_inference(index):
            try:
                start = time.perf_counter()
                out = self.engine.predict(obs.images[None], obs.state[None])
                latency = time.perf_counter() - start
                out = np.asarray(out)
                if out.shape != (1, self.horizon, self.action_dim):
                    expected = (1, self.horizon, self.action_dim)
                    raise ValueError(f"engine returned shape {out.shape}, expected {expected}")
            except Exception as exc:  # noqa: BLE001 - any engine failure must become a hold, not a crash
                reason = f"inference failed: {type(exc).__name__}: {exc}"
                if self.safety.hold_reason != reason:
                    logger.error("engine failed at t=%.3f", now, exc_info=True)
                with self._stats_lock:
                    self._failures += 1
                    if latency is not None:
                        self._latencies.append(latency)
                return self._finish(index, now, self.safety.hold(reason, now), obs.ages, latency=latency)
            with self._stats_lock:
                self._inferences += 1
                self._latencies.append(latency)
            predicted = out[0]
            if not np.isfinite(predicted).all():
                return self._finish(index, now, self.safety.hold("non-finite action", now), obs.ages,
                                    predicted=predicted, latency=latency)  # fmt: skip
            self.executor.add(index, predicted)

        try:
            action = self.executor.action(index)
        except NoActionError:
            return self._finish(index, now, self.safety.hold("no action", now), obs.ages,
                                predicted=predicted, latency=latency)  # fmt: skip
        measured = self.safety.measured_from_state(obs.state)
        result = self.safety.filter(action, measured, now, state=obs.state)
        return self._finish(index, now, result, obs.ages, predicted=predicted, action=action, latency=latency)

    # -- control -------------------------------------------------------------------
    def set_enabled(self, enabled: bool, now: float) -> None:
        """The enable/deadman input (any thread)."""
        self.safety.set_enabled(enabled, now)

    def reset(self) -> None:
        """Start over (e.g. the clock jumped back): cache, executor, safety reference, tick grid, counters.

        The enable state and the event history are kept.
        """
        self.cache.clear()
        self.executor.reset()
        self.safety.reset()
        self._reset_counters()

    # -- diagnostics -------------------------------------------------------------------
    @property
    def events(self) -> list[SafetyEvent]:
        """Hold/resume events (see ``SafetyFilter.events``)."""
        return self.safety.events

    def stats(self) -> RuntimeStats:
        with self._stats_lock:
            latencies = np.array(self._latencies, dtype=np.float64)
            times = list(self._tick_times)
            counts = (self._ticks, self._commands, self._holds, self._inferences, self._failures)
        p50 = p99 = rate = None
        if latencies.size:
            p50, p99 = (float(v) for v in np.percentile(latencies, [50, 99]))
        if len(times) >= 2 and times[-1] > times[0]:
            rate = (len(times) - 1) / (times[-1] - times[0])
        hold_events = sum(1 for e in self.safety.events if e.kind == "hold")
        ticks, commands, holds, inferences, failures = counts
        return RuntimeStats(ticks, commands, holds, hold_events, inferences, failures, p50, p99, rate,
                            self.safety.hold_reason)  # fmt: skip

    # -- internals ---------------------------------------------------------------------
    def _reset_counters(self) -> None:
        with self._stats_lock:
            self._origin: float | None = None
            self._last_index = -1
            self._ticks = self._commands = self._holds = self._inferences = self._failures = 0
            self._latencies: collections.deque[float] = collections.deque(maxlen=self._window)
            self._tick_times: collections.deque[float] = collections.deque(maxlen=self._window)

    def _index(self, now: float) -> int:
        if self._origin is None:
            self._origin = now
            index = 0
        else:
            index = max(round((now - self._origin) / self.spec.period_s), self._last_index + 1)
        self._last_index = index
        return index

    def _finish(
        self,
        index: int,
        now: float,
        result: SafetyResult,
        ages: dict[str, float],
        *,
        predicted: np.ndarray | None = None,
        action: np.ndarray | None = None,
        latency: float | None = None,
    ) -> TickResult:
        with self._stats_lock:
            if result.held:
                self._holds += 1
            else:
                self._commands += 1
        return TickResult(
            tick=index, time=now, command=result.command, held=result.held, reason=result.reason,
            predicted=predicted, action=action, latency_s=latency, ages=ages,
            hold_position=result.hold_position, clamped=result.clamped, activated=result.activated,
            limit=result.limit,
        )  # fmt: skip


def _check_engine(engine: Engine, spec: RobotSpec) -> None:
    """Refuse an engine whose declared sizes contradict the spec (sizes it does not declare are not checked)."""
    expected = {
        "horizon": spec.action.horizon,
        "action_dim": spec.action.dim,
        "state_dim": spec.state_dim,
        "num_views": spec.num_views,
    }
    wrong = [
        f"{name} {getattr(engine, name)} (spec: {value})"
        for name, value in expected.items()
        if isinstance(getattr(engine, name, None), int) and getattr(engine, name) != value
    ]
    if wrong:
        name = f"{type(engine).__name__} ({getattr(engine, 'backend', '?')})"
        raise ValueError(f"engine {name} does not fit robot spec {spec.name!r}: " + ", ".join(wrong))
