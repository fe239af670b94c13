"""Where inference runs, and how long it may take: a job per observation, two workers, a deadline.

An ``InferenceJob`` is one engine call on the observation of one control tick. Three ways
to run it, one function (``run_job``) doing the work in each:

* inline, in the control tick (synchronous execution);
* ``ThreadedInference``: a worker thread (asynchronous execution on a live clock). ``submit``
  and ``collect`` only touch a few fields under a lock, so the control tick never waits
  for the engine; one job at a time (a second ``submit`` while one is in flight is refused);
* ``ScheduledInference``: asynchronous execution on a simulated clock (bag replay, the
  simulated robot). A real thread would make results depend on the computer's speed; here
  the engine runs at ``submit`` and the result becomes visible to ``collect(now)`` once
  ``now >= observation time + latency`` on that clock (latency: a set value, or the
  engine's measured wall time), so a replay gives the same commands on every run.

Latency: ``wall_s`` is the engine's wall time; ``clock_s`` is the time the inference takes
on the runtime's clock (live: the wall time; simulated: the set latency, the wall time
for ``'measured'``, zero when none is set). Deadlines and delivery use ``clock_s``.
On a live clock ``min_latency_s`` pads each inference to at least that long (a slower
model, emulated).

``DeadlineMonitor`` counts inferences that take longer than the deadline (one finished
late, or one still in flight past it: counted once) and says when ``max_misses`` in a row
must hold the robot; one inference on time clears it.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

__all__ = ["CLOCK_TOLERANCE_S", "DeadlineMonitor", "InferenceJob", "InferenceWorker", "ScheduledInference",
           "ThreadedInference", "run_job"]

#: times closer than this count as equal: clocks at ~1.7e9 s have a resolution of ~2.4e-7 s as floats
CLOCK_TOLERANCE_S = 1e-6


@dataclass(eq=False)
class InferenceJob:
    """One engine call on the observation of control tick ``tick`` (taken at ``time`` [s])."""

    tick: int
    time: float
    images: np.ndarray  # uint8 [V, H, W, 3]
    state: np.ndarray  # float32 [S]
    chunk: np.ndarray | None = None  # float32 [horizon, action_dim] when it succeeded
    error: Exception | None = None
    wall_s: float | None = None
    clock_s: float | None = None
    ready_time: float | None = None  # simulated clock: when the result becomes visible
    missed: bool = False  # already counted as a deadline miss


def run_job(engine: Any, job: InferenceJob, horizon: int, action_dim: int, *, min_latency_s: float = 0.0) -> None:
    """Run ``engine.predict`` for ``job`` and store the chunk (or the exception) and the wall time in it."""
    start = time.perf_counter()
    try:
        out = np.asarray(engine.predict(job.images[None], job.state[None]))
        if out.shape != (1, horizon, action_dim):
            raise ValueError(f"engine returned shape {out.shape}, expected {(1, horizon, action_dim)}")
        job.chunk = out[0]
    except Exception as exc:  # noqa: BLE001 - any engine failure is reported by the tick as a hold
        job.error = exc
    remaining = min_latency_s - (time.perf_counter() - start)
    if remaining > 0:
        time.sleep(remaining)
    job.wall_s = time.perf_counter() - start


class InferenceWorker(Protocol):
    """Runs one job at a time beside the control tick."""

    @property
    def busy(self) -> bool:
        """A job was submitted and its result not collected yet."""
        ...

    def submit(self, job: InferenceJob) -> None: ...

    def collect(self, now: float) -> list[InferenceJob]:
        """Finished jobs whose results are available at ``now``, oldest first (never blocks)."""
        ...

    def in_flight(self) -> list[InferenceJob]:
        """Submitted jobs not collected yet."""
        ...

    def discard(self) -> None:
        """Forget every job in flight (its result, when it comes, is dropped)."""
        ...

    def close(self) -> None: ...


class ThreadedInference:
    """A worker thread that runs one job at a time (started on the first ``submit``)."""

    def __init__(self, engine: Any, horizon: int, action_dim: int, *, min_latency_s: float = 0.0) -> None:
        self._engine, self._horizon, self._dim, self._min_latency_s = engine, horizon, action_dim, min_latency_s
        self._cond = threading.Condition()
        self._pending: InferenceJob | None = None  # submitted, not started
        self._running: InferenceJob | None = None
        self._done: list[InferenceJob] = []
        self._generation = 0  # bumped by discard: a running job of an older generation is dropped
        self._running_generation = -1
        self._closed = False
        self._thread: threading.Thread | None = None

    @property
    def busy(self) -> bool:
        with self._cond:
            return bool(self._in_flight_locked())

    def submit(self, job: InferenceJob) -> None:
        with self._cond:
            if self._closed:
                raise RuntimeError("inference worker is closed")
            if self._in_flight_locked():
                raise RuntimeError("inference worker is busy: collect its result first")
            self._pending = job
            if self._thread is None:
                self._thread = threading.Thread(target=self._loop, name="hpt_ros-inference", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def collect(self, now: float) -> list[InferenceJob]:
        with self._cond:
            done, self._done = self._done, []
        return done

    def in_flight(self) -> list[InferenceJob]:
        with self._cond:
            return self._in_flight_locked()

    def discard(self) -> None:
        with self._cond:
            self._pending = None
            self._done = []
            self._generation += 1

    def wait_idle(self, timeout_s: float) -> bool:
        """Wait until no job is pending or running (results may wait uncollected); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: self._pending is None and self._running is None, timeout_s)

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._pending = None
            self._cond.notify_all()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=1.0)  # a hung engine must not hang shutdown: the thread is a daemon

    def _in_flight_locked(self) -> list[InferenceJob]:
        jobs = list(self._done)
        if self._running is not None and self._running_generation == self._generation:
            jobs.append(self._running)
        if self._pending is not None:
            jobs.append(self._pending)
        return jobs

    def _loop(self) -> None:
        while True:
            with self._cond:
                while self._pending is None and not self._closed:
                    self._cond.wait()
                if self._closed:
                    return
                job, self._pending = self._pending, None
                self._running, self._running_generation = job, self._generation
            run_job(self._engine, job, self._horizon, self._dim, min_latency_s=self._min_latency_s)
            job.clock_s = job.wall_s
            with self._cond:
                if self._running_generation == self._generation:
                    self._done.append(job)
                self._running = None
                self._cond.notify_all()


class ScheduledInference:
    """Results delivered on a simulated clock: at observation time + ``latency_s`` (None: the wall time)."""

    def __init__(self, engine: Any, horizon: int, action_dim: int, latency_s: float | None) -> None:
        self._engine, self._horizon, self._dim, self.latency_s = engine, horizon, action_dim, latency_s
        self._jobs: list[InferenceJob] = []

    @property
    def busy(self) -> bool:
        return bool(self._jobs)

    def submit(self, job: InferenceJob) -> None:
        if self._jobs:
            raise RuntimeError("inference worker is busy: collect its result first")
        run_job(self._engine, job, self._horizon, self._dim)
        job.clock_s = job.wall_s if self.latency_s is None else self.latency_s
        job.ready_time = job.time + job.clock_s
        self._jobs.append(job)

    def collect(self, now: float) -> list[InferenceJob]:
        ready = [j for j in self._jobs if j.ready_time is not None and j.ready_time <= now + CLOCK_TOLERANCE_S]
        self._jobs = [j for j in self._jobs if j not in ready]
        return ready

    def in_flight(self) -> list[InferenceJob]:
        return list(self._jobs)

    def discard(self) -> None:
        self._jobs = []

    def close(self) -> None:
        self._jobs = []


class DeadlineMonitor:
    """Deadline misses: counted, and ``max_misses`` in a row hold (``holding``) until one is on time."""

    def __init__(self, deadline_s: float | None, max_misses: int) -> None:
        self.deadline_s = deadline_s
        self.max_misses = int(max_misses)
        self.misses = 0  # since start (or reset)
        self.in_a_row = 0

    @property
    def holding(self) -> bool:
        return self.deadline_s is not None and self.in_a_row >= self.max_misses

    def finished(self, job: InferenceJob) -> None:
        """Judge a finished job by the time it took on the runtime's clock."""
        if self.deadline_s is None or job.clock_s is None:
            return
        if job.clock_s > self.deadline_s + CLOCK_TOLERANCE_S:
            self._miss(job)
        else:
            self.in_a_row = 0

    def check_in_flight(self, job: InferenceJob, now: float) -> None:
        """Count a job still running past its deadline now rather than when (if ever) it ends."""
        if self.deadline_s is not None and now - job.time > self.deadline_s + CLOCK_TOLERANCE_S:
            self._miss(job)

    def reset(self) -> None:
        self.misses = self.in_a_row = 0

    def _miss(self, job: InferenceJob) -> None:
        if not job.missed:
            job.missed = True
            self.misses += 1
            self.in_a_row += 1
