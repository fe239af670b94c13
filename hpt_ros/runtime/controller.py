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
5. inference (``hpt_ros.runtime.inference``), one job per observation:

   * synchronous (``execution.async: false``, the default): if the executor needs it
     (temporal ensembling: every tick), ``engine.predict`` on a batch of one, inline,
     timed with ``time.perf_counter``; the chunk is stored for tick ``k``;
   * asynchronous (``execution.async: true``): chunks that arrived since the last tick
     are stored for the tick of the observation they were computed from, their steps for
     past ticks dropped (``Executor.add(..., arrived=k)``); then, if no job is in flight
     and the executor needs one, this tick's observation is submitted to the worker (a
     thread on a live clock, ``simulated_clock=True``: a result scheduled on the caller's
     clock, see ``ScheduledInference``); the tick never waits for it;

   an exception, a wrong shape -> hold ``'inference failed: ...'``; NaN/inf in the chunk
   -> hold ``'non-finite action'`` (the chunk is not stored); ``max_deadline_misses``
   inferences in a row slower than ``deadline_ms`` -> hold ``'deadline missed'`` until one
   is on time again;
6. the executor's action for ``k`` (none: hold ``'no action'``) goes through
   ``SafetyFilter.filter`` with the measured joints of the observation (action joints
   matched to state joints by name) and the whole measured state (the workspace check's
   forward kinematics).

Hold reasons have a priority by construction: no model > sensors > inference >
non-finite action > deadline missed > no action > disabled. While disabled, steps 3-6
still run ("dry run"): the result carries the predicted chunk and the action the policy
would take, but no command; a reason of ``'disabled'`` therefore means "everything else
is ready".

Simulated latency (``execution.inference_latency_ms`` with ``simulated_clock=True``): a
synchronous tick's inference takes that long on the caller's clock, so its command goes
out ``TickResult.send_delay_s`` after the observation (the caller sends it then and skips
the ticks that fall meanwhile, as a loop blocked in inference would); an asynchronous
result arrives that long after its observation.

Only latency uses the wall clock; everything else uses ``now`` as passed in, so bag
replay on a simulated clock runs the exact same code. ``tick`` and ``reset`` are meant for
one thread (the control timer); ``set_enabled``, ``stats``, ``events`` and
``cache.update`` may be called from others. A synchronous ``tick`` runs the engine inline:
the caller must not run it on the thread that delivers sensor messages. ``close()``
stops the worker thread.
"""

from __future__ import annotations

import collections
import logging
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from hpt_ros.engine.base import Engine
from hpt_ros.spec.schema import MEASURED_LATENCY, RobotSpec

from .chunking import Executor, make_executor
from .errors import NoActionError, ObservationError
from .inference import DeadlineMonitor, InferenceJob, InferenceWorker, ScheduledInference, ThreadedInference, run_job
from .observation import Observation, ObservationCache
from .safety import SafetyEvent, SafetyFilter, SafetyResult

__all__ = ["CLOCK_JUMP_REASON", "DEADLINE_REASON", "PolicyRuntime", "RuntimeStats", "TickResult"]

CLOCK_JUMP_REASON = "clock jumped back"
DEADLINE_REASON = "deadline missed"

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
        predicted: the engine's chunk float32 [horizon, action_dim] that became available in this tick
            (synchronous: computed in it; None: no chunk came).
        predicted_tick: the tick of the observation ``predicted`` was computed from.
        action: the executor's action for this tick before safety (None when it did not get that far).
        latency_s: engine.predict wall time of ``predicted`` [s] (None: no chunk came).
        ages: sensor name -> age [s] at ``time`` (``inf`` if never received).
        hold_position: when held, the position to hold (see ``SafetyResult``).
        clamped: safety changed the action (limits or step).
        activated: first command after (re)activation (referenced to the measured state).
        limit: the workspace half-space that limited the command ('' if none; see ``SafetyFilter``).
        send_delay_s: when the command (or hold) takes effect, after ``time``: a synchronous
            inference's simulated latency (0 otherwise; see the module docstring).
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
    predicted_tick: int | None = None
    send_delay_s: float = 0.0


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
    deadline_misses: int = 0  # inferences slower than execution.deadline_ms
    deadline_misses_in_a_row: int = 0
    dropped_steps: int = 0  # chunk steps that arrived after their tick (asynchronous execution)

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
        simulated_clock: bool = False,
        worker: InferenceWorker | None = None,
    ) -> None:
        """``simulated_clock``: ``tick`` is called with simulated time (replay); asynchronous
        inference is then scheduled on it instead of run in a thread. ``worker``: the
        asynchronous worker to use instead of the one the spec and the clock call for."""
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
        execution = spec.execution
        self.asynchronous = execution.asynchronous
        self.simulated_clock = simulated_clock
        latency_ms = execution.inference_latency_ms
        if simulated_clock:  # the time an inference takes on the caller's clock (None: its wall time)
            self._clock_latency_s: float | None = (
                None if latency_ms == MEASURED_LATENCY else float(latency_ms or 0.0) / 1e3)
            self._min_latency_s = 0.0
        else:
            self._clock_latency_s = None
            self._min_latency_s = float(latency_ms) / 1e3 if isinstance(latency_ms, float) else 0.0
        self.deadline = DeadlineMonitor(None if execution.deadline_ms is None else execution.deadline_ms / 1e3,
                                        execution.max_deadline_misses)
        self._worker: InferenceWorker | None = worker
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
            if self.asynchronous:
                self._arrivals(index, now)  # results keep arriving (and being judged) while sensors are out
            return self._finish(index, now, self.safety.hold(exc.reason, now), self.cache.ages(now))

        if self.safety.enabled and not self.safety.active:
            self.executor.reset()  # (re)activation: start from fresh chunks only
        if self.asynchronous:
            return self._tick_asynchronous(index, now, obs)
        return self._tick_synchronous(index, now, obs)

    def _tick_synchronous(self, index: int, now: float, obs: Observation) -> TickResult:
        came = _Arrival()
        delay = 0.0
        if self.executor.needs_inference(index):
            job = InferenceJob(index, now, obs.images, obs.state)
            run_job(self.engine, job, self.horizon, self.action_dim, min_latency_s=self._min_latency_s)
            job.clock_s = self._job_clock_latency(job)
            if self.simulated_clock:
                delay = job.clock_s  # the loop is blocked this long on the caller's clock
            came = self._take([job], index, now)
        return self._command(index, now, obs, came, delay)

    def _tick_asynchronous(self, index: int, now: float, obs: Observation) -> TickResult:
        worker = self._worker_for_engine()
        came = self._arrivals(index, now)
        if not worker.busy and self.executor.needs_inference(index):
            worker.submit(InferenceJob(index, now, obs.images, obs.state))
            came = came.then(self._arrivals(index, now))  # a result with no latency is there at once
        for job in worker.in_flight():
            self.deadline.check_in_flight(job, now)
        return self._command(index, now, obs, came, 0.0)

    def _command(self, index: int, now: float, obs: Observation, came: _Arrival, delay: float) -> TickResult:
        """Steps 5 (holds) and 6 of the module docstring, after this tick's chunks are stored."""
        done = dict(predicted=came.chunk, predicted_tick=came.tick, latency=came.latency, delay=delay)
        if came.failure:
            return self._finish(index, now, self.safety.hold(came.failure, now), obs.ages, **done)
        if self.deadline.holding:
            return self._finish(index, now, self.safety.hold(DEADLINE_REASON, now), obs.ages, **done)
        try:
            action = self.executor.action(index)
        except NoActionError:
            return self._finish(index, now, self.safety.hold("no action", now), obs.ages, **done)
        measured = self.safety.measured_from_state(obs.state)
        result = self.safety.filter(action, measured, now, state=obs.state)
        return self._finish(index, now, result, obs.ages, action=action, **done)

    def _arrivals(self, index: int, now: float) -> _Arrival:
        if self._worker is None:
            return _Arrival()
        return self._take(self._worker.collect(now), index, now)

    def _take(self, jobs: list[InferenceJob], index: int, now: float) -> _Arrival:
        """Count, judge and store finished jobs (their steps before ``index`` dropped)."""
        came = _Arrival()
        for job in jobs:
            self.deadline.finished(job)
            with self._stats_lock:
                self._latencies.append(job.wall_s)
                if job.error is not None:
                    self._failures += 1
                else:
                    self._inferences += 1
            came.latency = job.wall_s
            if job.error is not None:
                exc = job.error
                came.failure = f"inference failed: {type(exc).__name__}: {exc}"
                if self.safety.hold_reason != came.failure:
                    logger.error("engine failed at t=%.3f", now, exc_info=exc)
                continue
            came.chunk, came.tick = job.chunk, job.tick
            if not np.isfinite(job.chunk).all():
                came.failure = "non-finite action"
                continue
            came.failure = ""  # the newest result decides
            self.executor.add(job.tick, job.chunk, arrived=index)
            with self._stats_lock:
                self._dropped += min(max(index - job.tick, 0), self.horizon)
        return came

    def _job_clock_latency(self, job: InferenceJob) -> float:
        if self.simulated_clock and self._clock_latency_s is not None:
            return self._clock_latency_s
        return float(job.wall_s or 0.0)

    def _worker_for_engine(self) -> InferenceWorker:
        if self._worker is None:
            if self.simulated_clock:
                self._worker = ScheduledInference(self.engine, self.horizon, self.action_dim, self._clock_latency_s)
            else:
                self._worker = ThreadedInference(self.engine, self.horizon, self.action_dim,
                                                 min_latency_s=self._min_latency_s)
        return self._worker

    # -- control -------------------------------------------------------------------
    def set_enabled(self, enabled: bool, now: float) -> None:
        """The enable/deadman input (any thread)."""
        self.safety.set_enabled(enabled, now)

    def reset(self) -> None:
        """Start over (e.g. the clock jumped back): cache, executor, inference in flight, deadline
        misses, safety reference, tick grid, counters.

        The enable state and the event history are kept.
        """
        self.cache.clear()
        self.executor.reset()
        if self._worker is not None:
            self._worker.discard()
        self.deadline.reset()
        self.safety.reset()
        self._reset_counters()

    @property
    def worker(self) -> InferenceWorker | None:
        """The asynchronous inference worker (None before the first asynchronous inference)."""
        return self._worker

    def close(self) -> None:
        """Stop the inference worker (asynchronous execution on a live clock); idempotent."""
        if self._worker is not None:
            self._worker.close()

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
            dropped = self._dropped
        p50 = p99 = rate = None
        if latencies.size:
            p50, p99 = (float(v) for v in np.percentile(latencies, [50, 99]))
        if len(times) >= 2 and times[-1] > times[0]:
            rate = (len(times) - 1) / (times[-1] - times[0])
        hold_events = sum(1 for e in self.safety.events if e.kind == "hold")
        ticks, commands, holds, inferences, failures = counts
        return RuntimeStats(ticks, commands, holds, hold_events, inferences, failures, p50, p99, rate,
                            self.safety.hold_reason, self.deadline.misses, self.deadline.in_a_row,
                            dropped)  # fmt: skip

    # -- internals ---------------------------------------------------------------------
    def _reset_counters(self) -> None:
        with self._stats_lock:
            self._origin: float | None = None
            self._last_index = -1
            self._ticks = self._commands = self._holds = self._inferences = self._failures = self._dropped = 0
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
        predicted_tick: int | None = None,
        action: np.ndarray | None = None,
        latency: float | None = None,
        delay: float = 0.0,
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
            limit=result.limit, predicted_tick=predicted_tick, send_delay_s=delay,
        )  # fmt: skip


@dataclass
class _Arrival:
    """What the chunks that came in one tick left: the newest chunk, its latency, a failure to hold for."""

    chunk: np.ndarray | None = None
    tick: int | None = None
    latency: float | None = None
    failure: str = ""

    def then(self, later: _Arrival) -> _Arrival:
        if later.latency is None:
            return self
        return later


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
