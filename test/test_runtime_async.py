"""Asynchronous, time-aligned chunk execution: late chunks aligned to the tick of their
observation (past steps dropped) and blended with the chunks in hand, deadline misses
that hold and resume, a worker thread that never blocks the tick, and inference latency
simulated on the replay clock (the same commands on every run).

Tiny spec (test_runtime_helpers) with horizon 8: period 0.125 s, ensembling m = 0.5. The
scripted engine answers the observation of tick k (state a = k) with
``chunk[i] = [10 k + i, 0]``, so every action names the chunk and step it came from.
"""

from __future__ import annotations

import math
import threading

import numpy as np
import pytest

from hpt_ros.engine.base import Engine
from hpt_ros.runtime import (
    DEADLINE_REASON,
    NoActionError,
    PolicyRuntime,
    ReplanExecutor,
    ScheduledInference,
    TemporalEnsembler,
    ThreadedInference,
)
from hpt_ros.spec import SpecError, parse_spec

from test_runtime_helpers import tiny_data

W = math.exp(-0.5)  # the ensembling weight of the second-oldest chunk (m = 0.5)
PERIOD = 0.125
WAIT_S = 10.0  # bound on every wait for the worker thread (never reached unless something is broken)


def async_spec(horizon: int = 8, **execution):
    data = tiny_data()
    data["action"]["horizon"] = horizon
    data["safety"]["require_enable"] = False
    data["execution"].update({"async": True, **execution})
    return parse_spec(data, "tiny_async.yaml")


class TickEngine(Engine):
    """``chunk[i] = [10 * state_a + i, 0]``; optionally blocks until ``release`` is set."""

    backend = "scripted"

    def __init__(self, horizon: int = 8, block: bool = False) -> None:
        self.horizon, self.action_dim, self.state_dim, self.num_views = horizon, 2, 2, 2
        self.calls: list[float] = []
        self.block = block
        self.started, self.release, self.finished = threading.Event(), threading.Event(), threading.Event()
        self.fail: str | None = None

    def predict(self, images: np.ndarray, state: np.ndarray) -> np.ndarray:
        self.calls.append(float(state[0, 0]))
        self.started.set()
        if self.block:
            self.release.wait(WAIT_S)
        self.finished.set()
        if self.fail:
            raise RuntimeError(self.fail)
        chunk = np.zeros((1, self.horizon, 2), np.float32)
        chunk[0, :, 0] = 10 * state[0, 0] + np.arange(self.horizon)
        return chunk


def feed(rt: PolicyRuntime, tick: int) -> float:
    t = tick * PERIOD
    for cam in ("cam0", "cam1"):
        rt.cache.update(cam, np.zeros((4, 6, 3), np.uint8), t)
    rt.cache.update("joints", np.array([tick, 0.0]), t)
    return t


def run_ticks(rt: PolicyRuntime, ticks):
    return [rt.tick(feed(rt, k)) for k in ticks]


# -- executors: alignment, dropped steps, blending -------------------------------------------------

@pytest.mark.parametrize("executor", [TemporalEnsembler(8, 0.5), ReplanExecutor(8, 4),
                                      ReplanExecutor(8, 4, aggregate_overlap=True)])
def test_a_late_chunk_serves_only_its_remaining_steps(executor) -> None:
    chunk = np.arange(16, dtype=np.float64).reshape(8, 2)
    executor.add(10, chunk, arrived=13)  # computed from tick 10, available at tick 13
    with pytest.raises(NoActionError):
        executor.action(12)  # meant for a moment already gone: dropped
    for tick in range(13, 18):
        assert executor.action(tick) == pytest.approx(chunk[tick - 10])  # ticks 13..17 <- chunk[3..7]
    with pytest.raises(NoActionError):
        executor.action(18)


def test_a_late_chunk_is_ensembled_with_the_chunk_in_hand() -> None:
    ensembler = TemporalEnsembler(8, 0.5)
    ensembler.add(6, np.full((8, 1), 1.0), arrived=8)
    ensembler.add(10, np.full((8, 1), 2.0), arrived=13)
    # tick 13: the chunk of tick 6 (older, weight 1) and the one of tick 10 (weight exp(-0.5)):
    # (1 + 2 * 0.60653066) / 1.60653066 = 1.3775407
    assert ensembler.action(13) == pytest.approx([1.3775407], abs=1e-7)
    assert ensembler.action(14) == pytest.approx([2.0])  # tick 6's chunk ended at tick 13


def test_replan_aggregates_the_overlap_of_the_running_and_the_arriving_chunk() -> None:
    old, new = np.full((8, 1), 1.0), np.full((8, 1), 3.0)
    aggregating = ReplanExecutor(8, 4, aggregate_overlap=True)
    aggregating.add(0, old)
    assert not aggregating.needs_inference(3) and aggregating.needs_inference(4)
    aggregating.add(4, new, arrived=6)
    assert aggregating.action(6) == pytest.approx([2.0]) and aggregating.action(7) == pytest.approx([2.0])
    assert aggregating.action(8) == pytest.approx([3.0])  # the old chunk ended at tick 7
    assert not aggregating.needs_inference(7) and aggregating.needs_inference(8)
    switching = ReplanExecutor(8, 4)  # synchronous replanning: the new chunk takes over at once
    switching.add(0, old)
    switching.add(4, new, arrived=6)
    assert switching.action(6) == pytest.approx([3.0])


# -- the runtime on a simulated clock ----------------------------------------------------------------

def test_chunks_arrive_latency_late_aligned_to_their_observation_and_ensembled() -> None:
    rt = PolicyRuntime(async_spec(inference_latency_ms=375), TickEngine(), simulated_clock=True)  # 3 periods
    r = run_ticks(rt, range(10))
    assert [x.reason for x in r[:3]] == ["no action"] * 3  # the first chunk is still on its way
    assert r[3].predicted_tick == 0 and not r[3].held and r[3].activated
    assert r[3].action == pytest.approx([3.0, 0.0])  # chunk 0, step 3
    assert r[4].action == pytest.approx([4.0, 0.0]) and r[5].action == pytest.approx([5.0, 0.0])
    # tick 6: chunk 0 step 6 (oldest, weight 1) and chunk 3 step 3 = 33 (weight exp(-0.5)):
    # (6 + 0.60653066 * 33) / 1.60653066 = 16.1935981
    assert r[6].predicted_tick == 3 and r[6].action == pytest.approx([16.1935981, 0.0], abs=1e-6)
    assert r[7].action == pytest.approx([17.1935981, 0.0], abs=1e-6)
    assert r[8].action == pytest.approx([35.0, 0.0])  # chunk 0 ended at tick 7
    # tick 9: chunk 3 step 6 = 36 and chunk 6 step 3 = 63: (36 + 0.60653066 * 63) / 1.60653066 = 46.1935981
    assert r[9].predicted_tick == 6 and r[9].action == pytest.approx([46.1935981, 0.0], abs=1e-6)
    assert [x.predicted_tick for x in r] == [None, None, None, 0, None, None, 3, None, None, 6]
    assert rt.engine.calls == [0.0, 3.0, 6.0, 9.0]  # one job in flight at a time, submitted when idle
    assert rt.stats().dropped_steps == 9  # three chunks, three past steps each
    assert all(x.send_delay_s == 0.0 for x in r)  # an asynchronous tick never waits


def test_asynchronous_without_latency_commands_exactly_as_synchronous() -> None:
    sync = PolicyRuntime(async_spec(**{"async": False}), TickEngine(), simulated_clock=True)
    asynchronous = PolicyRuntime(async_spec(), TickEngine(), simulated_clock=True)
    a, b = run_ticks(sync, range(12)), run_ticks(asynchronous, range(12))
    assert [x.command.tolist() for x in a] == [x.command.tolist() for x in b]
    assert len({tuple(x.command) for x in a}) > 1  # the commands move (until the joint limit)


def test_deadline_misses_hold_the_robot_and_an_inference_on_time_resumes_it() -> None:
    engine = TickEngine()
    worker = ScheduledInference(engine, 8, 2, latency_s=0.25)  # 2 periods: later than the deadline
    rt = PolicyRuntime(async_spec(deadline_ms=200, max_deadline_misses=2), engine, simulated_clock=True,
                       worker=worker)
    r = run_ticks(rt, range(5))
    assert r[2].predicted_tick == 0 and not r[2].held  # miss 1: counted, still commanding
    assert rt.stats().deadline_misses == 2 and r[4].held and r[4].reason == DEADLINE_REASON  # miss 2: hold
    worker.latency_s = 0.1  # the model keeps up again (from the job submitted at tick 6)
    r += run_ticks(rt, range(5, 8))
    assert r[5].reason == DEADLINE_REASON and r[6].reason == DEADLINE_REASON  # tick 4's job: miss 3
    assert r[7].predicted_tick == 6 and not r[7].held and r[7].activated  # on time: resumes
    stats = rt.stats()
    assert stats.deadline_misses == 3 and stats.deadline_misses_in_a_row == 0 and stats.reason == ""
    assert [(e.kind, e.reason) for e in rt.events][-2:] == [("hold", DEADLINE_REASON), ("resume", DEADLINE_REASON)]


def test_an_inference_still_running_past_its_deadline_is_counted_once() -> None:
    rt = PolicyRuntime(async_spec(deadline_ms=200, max_deadline_misses=5, inference_latency_ms=1000),
                       TickEngine(), simulated_clock=True)
    r = run_ticks(rt, range(2))
    assert rt.stats().deadline_misses == 0
    r += run_ticks(rt, range(2, 8))
    assert rt.stats().deadline_misses == 1  # at tick 2 (0.25 s > 0.2 s), while still in flight
    r += run_ticks(rt, range(8, 9))
    assert r[8].predicted_tick == 0 and rt.stats().deadline_misses == 1  # its arrival is not a second miss


def test_a_synchronous_inference_with_simulated_latency_delays_its_command_and_misses() -> None:
    spec = async_spec(**{"async": False, "deadline_ms": 100, "max_deadline_misses": 2, "inference_latency_ms": 150})
    rt = PolicyRuntime(spec, TickEngine(), simulated_clock=True)
    r = run_ticks(rt, range(3))
    assert [x.send_delay_s for x in r] == [0.15] * 3
    assert not r[0].held and r[0].action == pytest.approx([0.0, 0.0])  # chunk 0 step 0: stale when sent
    assert r[1].reason == DEADLINE_REASON and rt.stats().deadline_misses == 3


def test_an_engine_failure_in_the_worker_holds_then_fresh_chunks_resume() -> None:
    engine = TickEngine()
    rt = PolicyRuntime(async_spec(inference_latency_ms=250), engine, simulated_clock=True)  # 2 periods
    r = run_ticks(rt, range(3))
    assert not r[2].held and r[2].predicted_tick == 0
    engine.fail = "boom"
    r += run_ticks(rt, range(3, 6))
    engine.fail = None
    r += run_ticks(rt, range(6, 9))
    assert not r[4].held and r[4].predicted_tick == 2  # computed at tick 2, before the failures
    assert r[6].reason == "inference failed: RuntimeError: boom"  # tick 4's job
    assert r[7].reason == "no action"  # after a hold, fresh chunks only: tick 6's job is on its way
    assert not r[8].held and r[8].activated and r[8].action == pytest.approx([62.0, 0.0])  # chunk 6, step 2


# -- the worker thread -------------------------------------------------------------------------------

def test_the_worker_thread_never_blocks_the_tick() -> None:
    engine = TickEngine(block=True)
    rt = PolicyRuntime(async_spec(), engine)  # live clock: a worker thread
    try:
        first = run_ticks(rt, [0])[0]
        assert engine.started.wait(WAIT_S)  # the engine runs ...
        assert not engine.finished.is_set()  # ... and is still blocked, yet the tick returned
        assert isinstance(rt.worker, ThreadedInference) and rt.worker.busy
        more = run_ticks(rt, [1, 2])
        assert [x.reason for x in [first, *more]] == ["no action"] * 3 and not engine.finished.is_set()
        assert engine.calls == [0.0]  # no second job while one is in flight
        engine.release.set()
        assert rt.worker.wait_idle(WAIT_S)
        arrived = run_ticks(rt, [3])[0]
        assert arrived.predicted_tick == 0 and arrived.action == pytest.approx([3.0, 0.0])  # chunk 0, step 3
        assert rt.worker.wait_idle(WAIT_S) and engine.calls == [0.0, 3.0]  # tick 3 submitted the next
    finally:
        engine.release.set()
        rt.close()


def test_an_engine_failure_in_the_worker_thread_is_a_hold() -> None:
    engine = TickEngine()
    engine.fail = "no GPU"
    rt = PolicyRuntime(async_spec(), engine)
    try:
        run_ticks(rt, [0])
        assert rt.worker.wait_idle(WAIT_S)
        r = run_ticks(rt, [1])[0]
        assert r.held and r.reason == "inference failed: RuntimeError: no GPU"
        assert rt.stats().inference_failures == 1
    finally:
        rt.close()


# -- the spec keys -----------------------------------------------------------------------------------

def test_execution_keys_parse_and_bad_values_name_their_key() -> None:
    e = async_spec(deadline_ms=80, max_deadline_misses=4, inference_latency_ms="measured").execution
    assert (e.asynchronous, e.deadline_ms, e.max_deadline_misses, e.inference_latency_ms) == (True, 80.0, 4,
                                                                                               "measured")
    default = parse_spec(tiny_data(), "tiny.yaml").execution
    assert (default.asynchronous, default.deadline_ms, default.inference_latency_ms) == (False, None, None)
    for key, value in [("async", "yes"), ("deadline_ms", 0), ("max_deadline_misses", 0),
                       ("inference_latency_ms", -1), ("inference_latency_ms", "slow"), ("deadline", 5)]:
        with pytest.raises(SpecError, match=f"execution.{key}"):
            async_spec(**{key: value})
