"""From predicted action chunks to one action per control tick.

A chunk predicted at tick ``t`` is ``[horizon, action_dim]``: ``chunk[i]`` is meant for
tick ``t + i``. Ticks are integers on the control grid; a tick without a chunk (a missed
or held tick) is simply a gap. Two executors, one interface (``Executor``):

* ``TemporalEnsembler`` (ACT's temporal ensembling): a new chunk every tick; the action
  at tick ``t`` is the weighted mean of every stored chunk's prediction for ``t``, with
  weights ``w_i = exp(-m * i)``, normalised, where ``i`` counts the available
  predictions from the OLDEST (``i = 0``) to the newest, as in ACT's reference code
  (which drops unpopulated entries before weighting). With a gap, ``i`` is therefore the
  rank among the chunks that exist, not the tick distance. ``m >= 0`` favours older
  predictions (smoother); ``m = 0`` is a plain mean.
* ``ReplanExecutor``: one chunk is executed for ``every`` ticks (``chunk[tick - start]``),
  then a new one is needed. Its action stays available to the end of the chunk. With
  ``aggregate_overlap`` (asynchronous execution, where the next chunk arrives while the
  current one still runs) the two are averaged on the ticks both cover, so the switch
  from one plan to the next is spread over the overlap instead of being one jump.

Late chunks (asynchronous execution): ``add(tick, chunk, arrived=a)`` stores a chunk
computed from tick ``tick``'s observation that became available at tick ``a``; it is
aligned to ``tick`` (``chunk[i]`` still means tick ``tick + i``) and its steps for ticks
before ``a`` are dropped: they were meant for moments already gone. A chunk from tick 10
arriving at tick 13 (horizon 8) therefore serves ticks 13..17 with ``chunk[3..7]``.

``make_executor(execution, horizon)`` builds the one a spec's ``execution`` section names
(asynchronous execution turns on the replan overlap aggregation).
"""

from __future__ import annotations

import math
from typing import Protocol, runtime_checkable

import numpy as np

from hpt_ros.spec.schema import ExecutionSpec

from .errors import NoActionError

__all__ = ["Executor", "ReplanExecutor", "TemporalEnsembler", "make_executor"]


@runtime_checkable
class Executor(Protocol):
    """Turns chunks into per-tick actions."""

    horizon: int

    def needs_inference(self, tick: int) -> bool:
        """Whether a new chunk should be predicted at ``tick`` (before ``action(tick)``)."""
        ...

    def add(self, tick: int, chunk: np.ndarray, *, arrived: int | None = None) -> None:
        """Store ``chunk`` [horizon, action_dim] predicted at ``tick``, usable from tick ``arrived`` on."""
        ...

    def action(self, tick: int) -> np.ndarray:
        """float64 [action_dim] to execute at ``tick``; ``NoActionError`` if nothing covers it."""
        ...

    def reset(self) -> None:
        """Forget every chunk."""
        ...


def _check_chunk(chunk: np.ndarray, horizon: int, dim: int | None) -> np.ndarray:
    array = np.asarray(chunk, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] != horizon or (dim is not None and array.shape[1] != dim):
        want = f"[{horizon}, {dim if dim is not None else 'action_dim'}]"
        raise ValueError(f"expected a chunk of shape {want}, found {array.shape}")
    return array


class TemporalEnsembler:
    """ACT temporal ensembling over overlapping chunks (``w_i = exp(-m * i)``, ``i = 0`` oldest)."""

    def __init__(self, horizon: int, coefficient: float) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, found {horizon}")
        if not math.isfinite(coefficient):
            raise ValueError(f"ensemble coefficient must be finite, found {coefficient}")
        self.horizon = int(horizon)
        self.coefficient = float(coefficient)
        self._chunks: dict[int, np.ndarray] = {}
        self._first: dict[int, int] = {}  # start tick -> first tick the chunk may serve
        self._dim: int | None = None

    def needs_inference(self, tick: int) -> bool:
        """Always: ensembling wants a fresh chunk every tick."""
        return True

    def add(self, tick: int, chunk: np.ndarray, *, arrived: int | None = None) -> None:
        """Store the chunk predicted at ``tick`` (replacing one already stored for that tick);
        its steps before ``arrived`` are dropped."""
        array = _check_chunk(chunk, self.horizon, self._dim)
        self._dim = array.shape[1]
        tick = int(tick)
        self._chunks[tick] = array
        self._first[tick] = max(tick, int(arrived)) if arrived is not None else tick
        self._prune(tick)

    def covering(self, tick: int) -> list[int]:
        """Start ticks of the stored chunks that predict ``tick``, oldest first."""
        return sorted(start for start in self._chunks if self._first[start] <= tick < start + self.horizon)

    def weights(self, count: int) -> np.ndarray:
        """Normalised weights for ``count`` predictions, oldest first."""
        w = np.exp(-self.coefficient * np.arange(count, dtype=np.float64))
        return w / w.sum()

    def action(self, tick: int) -> np.ndarray:
        """Weighted mean of the stored predictions for ``tick``."""
        tick = int(tick)
        self._prune(tick)
        starts = self.covering(tick)
        if not starts:
            raise NoActionError(f"no stored chunk covers tick {tick} (horizon {self.horizon})")
        predictions = np.stack([self._chunks[s][tick - s] for s in starts])
        return self.weights(len(starts)) @ predictions

    def reset(self) -> None:
        self._chunks.clear()
        self._first.clear()
        self._dim = None

    def __len__(self) -> int:
        return len(self._chunks)

    def _prune(self, tick: int) -> None:
        for start in [s for s in self._chunks if s + self.horizon <= tick]:
            del self._chunks[start], self._first[start]


class _Stored:
    """One stored chunk: its start tick, the first tick it may serve, the steps."""

    __slots__ = ("start", "first", "steps")

    def __init__(self, start: int, first: int, steps: np.ndarray) -> None:
        self.start, self.first, self.steps = start, first, steps

    def covers(self, tick: int) -> bool:
        return self.first <= tick < self.start + len(self.steps)


class ReplanExecutor:
    """Execute one chunk for ``every`` ticks, then ask for a new one (see the module docstring)."""

    def __init__(self, horizon: int, every: int, *, aggregate_overlap: bool = False) -> None:
        if horizon < 1:
            raise ValueError(f"horizon must be >= 1, found {horizon}")
        if not 1 <= every <= horizon:
            raise ValueError(f"replan every must be in 1..{horizon} (the horizon), found {every}")
        self.horizon = int(horizon)
        self.every = int(every)
        self.aggregate_overlap = bool(aggregate_overlap)
        self._current: _Stored | None = None
        self._previous: _Stored | None = None  # kept only with aggregate_overlap

    def needs_inference(self, tick: int) -> bool:
        """True with no chunk, ``every`` ticks after the newest chunk's start, or before it."""
        if self._current is None:
            return True
        offset = int(tick) - self._current.start
        return offset < 0 or offset >= self.every

    def add(self, tick: int, chunk: np.ndarray, *, arrived: int | None = None) -> None:
        steps = _check_chunk(chunk, self.horizon, None)
        tick = int(tick)
        stored = _Stored(tick, max(tick, int(arrived)) if arrived is not None else tick, steps)
        if self.aggregate_overlap and self._current is not None and self._current.start < tick:
            self._previous = self._current
        else:
            self._previous = None
        self._current = stored

    def action(self, tick: int) -> np.ndarray:
        """``chunk[tick - start]`` of the current chunk (available to the chunk's end); with
        ``aggregate_overlap``, the mean with the previous chunk's step where that one covers ``tick`` too."""
        tick = int(tick)
        if self._current is None:
            raise NoActionError(f"no chunk stored (tick {tick})")
        serving = [c for c in (self._previous, self._current) if c is not None and c.covers(tick)]
        if not serving:
            raise NoActionError(f"tick {tick} is outside the chunk predicted at tick {self._current.start} "
                                f"(horizon {self.horizon})")
        return np.mean([c.steps[tick - c.start] for c in serving], axis=0)

    def reset(self) -> None:
        self._current = None
        self._previous = None


def make_executor(execution: ExecutionSpec, horizon: int) -> TemporalEnsembler | ReplanExecutor:
    """The executor ``execution.mode`` names, for chunks of ``horizon`` steps."""
    if execution.mode == "temporal_ensemble":
        return TemporalEnsembler(horizon, execution.ensemble_coefficient)
    if execution.mode == "replan":
        return ReplanExecutor(horizon, execution.replan_every, aggregate_overlap=execution.asynchronous)
    raise ValueError(f"unknown execution mode {execution.mode!r} (temporal_ensemble or replan)")
