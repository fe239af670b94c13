"""Chunk execution with hand-computed numbers: ACT temporal ensembling and re-planning.

Ensembling, horizon 3, m = 0.5: weights exp(-0.5 * i) for i = 0 (oldest), 1, 2 are
1, 0.60653066, 0.36787944. Chunks (action dim 1):
    tick 0: [1, 2, 3]       -> predicts tick 0: 1, tick 1: 2, tick 2: 3
    tick 1: [10, 20, 30]    -> tick 1: 10, tick 2: 20, tick 3: 30
    tick 2: [100, 200, 300] -> tick 2: 100, ...
tick 0 = 1
tick 1 = (1 * 2 + 0.60653066 * 10) / 1.60653066 = 8.0653066 / 1.60653066 = 5.02032535
tick 2 = (1 * 3 + 0.60653066 * 20 + 0.36787944 * 100) / 1.97441010 = 51.9185572 / 1.9744101 = 26.29573121
"""

from __future__ import annotations

import numpy as np
import pytest

from hpt_ros.runtime import NoActionError, ReplanExecutor, TemporalEnsembler, make_executor
from hpt_ros.spec import ExecutionSpec

E05 = 0.60653066  # exp(-0.5)
E10 = 0.36787944  # exp(-1)


def col(*values: float) -> np.ndarray:
    return np.array(values, dtype=np.float32)[:, None]


def test_ensemble_three_overlapping_chunks():
    ens = TemporalEnsembler(horizon=3, coefficient=0.5)
    ens.add(0, col(1, 2, 3))
    assert ens.action(0) == pytest.approx([1.0])
    ens.add(1, col(10, 20, 30))
    assert ens.action(1) == pytest.approx([5.02032535], abs=1e-6)
    ens.add(2, col(100, 200, 300))
    assert ens.covering(2) == [0, 1, 2]
    assert ens.weights(3) == pytest.approx(np.array([1.0, E05, E10]) / (1.0 + E05 + E10), abs=1e-7)
    assert ens.action(2) == pytest.approx([26.29573121], abs=1e-6)
    # tick 3: chunk 0 has expired (covers 0..2); chunk 1 gives 30 (oldest), chunk 2 gives 200, new chunk 3 gives 7
    ens.add(3, col(7, 8, 9))
    assert ens.covering(3) == [1, 2, 3]
    # (1 * 30 + 0.60653066 * 200 + 0.36787944 * 7) / 1.9744101 = 153.8812881 / 1.9744101 = 77.93785
    assert ens.action(3) == pytest.approx([77.937855], abs=1e-5)
    assert len(ens) == 3


def test_ensemble_per_dimension():
    ens = TemporalEnsembler(horizon=2, coefficient=0.0)  # m = 0: plain mean
    ens.add(5, np.array([[1.0, -1.0], [3.0, -3.0]]))
    ens.add(6, np.array([[5.0, -5.0], [0.0, 0.0]]))
    assert ens.action(6) == pytest.approx([4.0, -4.0])  # (3 + 5) / 2, (-3 - 5) / 2


def test_ensemble_gap_weights_by_rank_not_distance():
    """Tick 2 missed: at tick 3 the available predictions are chunk 1 (oldest, i = 0) and chunk 3 (i = 1)."""
    ens = TemporalEnsembler(horizon=3, coefficient=0.5)
    ens.add(0, col(1, 2, 3))
    ens.add(1, col(10, 20, 30))
    ens.add(3, col(40, 50, 60))
    assert ens.covering(3) == [1, 3]
    # (1 * 30 + 0.60653066 * 40) / 1.60653066 = 54.2612264 / 1.60653066 = 33.77541
    assert ens.action(3) == pytest.approx([33.775407], abs=1e-5)
    # tick 4 with no new chunk: chunk 1 gone (covers 1..3); only chunk 3's 50
    assert ens.action(4) == pytest.approx([50.0])
    # tick 6: nothing covers it
    with pytest.raises(NoActionError):
        ens.action(6)


def test_ensemble_reset_and_shape_checks():
    ens = TemporalEnsembler(horizon=3, coefficient=0.5)
    ens.add(0, col(1, 2, 3))
    ens.reset()
    with pytest.raises(NoActionError):
        ens.action(0)
    ens.add(1, col(4, 5, 6))
    assert ens.action(1) == pytest.approx([4.0])  # nothing of the chunk before the reset
    with pytest.raises(ValueError, match=r"\[3, 1\]"):
        ens.add(2, np.zeros((3, 2)))  # action dim changed
    with pytest.raises(ValueError, match="shape"):
        ens.add(2, np.zeros((2, 1)))  # wrong horizon
    assert ens.needs_inference(7)


def test_replan_runs_chunk_for_every_ticks():
    rep = ReplanExecutor(horizon=4, every=2)
    assert rep.needs_inference(0)
    rep.add(0, col(1, 2, 3, 4))
    assert not rep.needs_inference(0) and not rep.needs_inference(1)
    assert rep.action(0) == pytest.approx([1.0])
    assert rep.action(1) == pytest.approx([2.0])
    assert rep.needs_inference(2)
    # the chunk stays usable to its end if no new one arrives
    assert rep.action(3) == pytest.approx([4.0])
    with pytest.raises(NoActionError):
        rep.action(4)
    rep.add(2, col(10, 20, 30, 40))
    assert rep.action(2) == pytest.approx([10.0])
    assert rep.action(3) == pytest.approx([20.0])


def test_replan_gap_stays_on_the_time_grid():
    rep = ReplanExecutor(horizon=4, every=3)
    rep.add(0, col(1, 2, 3, 4))
    # tick 1 missed: tick 2 executes chunk step 2, not step 1
    assert not rep.needs_inference(2)
    assert rep.action(2) == pytest.approx([3.0])
    assert rep.needs_inference(3)
    rep.reset()
    assert rep.needs_inference(1)
    with pytest.raises(NoActionError):
        rep.action(1)


def test_factory_from_execution_spec():
    ens = make_executor(ExecutionSpec(mode="temporal_ensemble", ensemble_coefficient=0.25), horizon=8)
    assert isinstance(ens, TemporalEnsembler) and ens.coefficient == 0.25 and ens.horizon == 8
    rep = make_executor(ExecutionSpec(mode="replan", replan_every=4), horizon=8)
    assert isinstance(rep, ReplanExecutor) and rep.every == 4
    with pytest.raises(ValueError, match="mode"):
        make_executor(ExecutionSpec(mode="other"), horizon=8)
    with pytest.raises(ValueError, match="1..8"):
        ReplanExecutor(horizon=8, every=9)
