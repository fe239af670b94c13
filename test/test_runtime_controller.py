"""PolicyRuntime over scripted ticks with a fake engine: commands, dry run while disabled,
holds for stale cameras, engine failures, no model, and resumption from the measured state.

Tiny spec (test_runtime_helpers): period 0.125 s, horizon 3, ensembling m = 0.5, step
limits a 0.125 / b 0.0625, camera max_age 0.25 s, joints max_age 0.125 s. The fake
engine predicts ``chunk[i] = state + 0.1 * (i + 1)``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from hpt_ros.engine.base import Engine
from hpt_ros.runtime import CLOCK_JUMP_REASON, PolicyRuntime, ReplanExecutor

from test_runtime_helpers import tiny_spec

E05 = 0.60653066  # exp(-0.5)


class FakeEngine(Engine):
    backend = "fake"

    def __init__(self, horizon: int = 3, action_dim: int = 2) -> None:
        self.horizon, self.action_dim, self.state_dim, self.num_views = horizon, action_dim, 2, 2
        self.calls: list[tuple[tuple[int, ...], np.ndarray]] = []
        self.fail: str | None = None
        self.output: np.ndarray | None = None  # forced output

    def predict(self, images: np.ndarray, state: np.ndarray) -> np.ndarray:
        self.calls.append((images.shape, state.copy()))
        if self.fail:
            raise RuntimeError(self.fail)
        if self.output is not None:
            return self.output
        steps = 0.1 * np.arange(1, self.horizon + 1, dtype=np.float32)
        return (state[:, None, :] + steps[None, :, None]).astype(np.float32)


def feed(rt: PolicyRuntime, t: float, state, cameras=("cam0", "cam1")) -> None:
    for cam in cameras:
        rt.cache.update(cam, np.zeros((4, 6, 3), np.uint8), t)
    rt.cache.update("joints", np.array(state, dtype=np.float64), t)


def test_disabled_dry_run_then_ensembled_commands():
    engine = FakeEngine()
    rt = PolicyRuntime(tiny_spec(), engine)
    feed(rt, 0.0, [0.0, 0.0])
    r = rt.tick(0.0)
    assert r.held and r.reason == "disabled" and r.command is None and r.hold_position is None
    assert r.predicted == pytest.approx(np.array([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3]]))  # dry run
    assert r.action == pytest.approx([0.1, 0.1]) and r.latency_s is not None
    assert engine.calls[0][0] == (1, 2, 4, 6, 3) and engine.calls[0][1].shape == (1, 2)

    rt.set_enabled(True, 0.1)
    feed(rt, 0.125, [0.2, 0.1])
    r = rt.tick(0.125)
    # activation: executor reset (tick 0's chunk dropped), fresh chunk [0.3, 0.2]; b stepped from measured 0.1
    assert r.tick == 1 and not r.held and r.activated and r.clamped
    assert r.action == pytest.approx([0.3, 0.2])
    assert r.command == pytest.approx([0.3, 0.1625])

    feed(rt, 0.25, [0.25, 0.15])
    r = rt.tick(0.25)
    # ensemble: chunk 1 step 1 = [0.4, 0.3] (oldest, w 1), chunk 2 step 0 = [0.35, 0.25] (w 0.60653066)
    # a = (0.4 + 0.60653066 * 0.35) / 1.60653066 = 0.3811225, b = (0.3 + 0.60653066 * 0.25) / 1.60653066 = 0.2811225
    assert r.action == pytest.approx([0.3811225, 0.2811225], abs=1e-6)
    # safety from the last command [0.3, 0.1625]: a within 0.125; b limited to 0.1625 + 0.0625
    assert r.command == pytest.approx([0.3811225, 0.225], abs=1e-6)
    assert [(e.kind, e.reason) for e in rt.events] == [("hold", "disabled"), ("resume", "disabled")]


def test_stale_camera_holds_then_resumes_from_measured():
    engine = FakeEngine()
    rt = PolicyRuntime(tiny_spec(safety={"require_enable": False}), engine)
    results = []
    script = [  # (time, state, cameras updated)
        (0.0, [0.0, 0.0], ("cam0", "cam1")),
        (0.125, [0.05, 0.05], ("cam0", "cam1")),
        (0.25, [0.1, 0.1], ("cam1",)),  # cam0 stops here (last 0.125)
        (0.375, [0.1, 0.1], ("cam1",)),  # cam0 age 0.25: still fresh (inclusive)
        (0.5, [0.1, 0.1], ("cam1",)),  # age 0.375 > 0.25: hold
        (0.625, [0.1, 0.1], ("cam1",)),  # still held, no new event
        (0.75, [-0.2, 0.3], ("cam0", "cam1")),  # back: resume from the measured state
    ]
    for t, state, cams in script:
        feed(rt, t, state, cams)
        results.append(rt.tick(t))
    assert [r.held for r in results] == [False, False, False, False, True, True, False]
    held = results[4]
    assert held.reason == "stale cam0" and held.command is None and held.predicted is None
    assert held.ages["cam0"] == 0.375 and held.ages["cam1"] == 0.0
    assert held.hold_position == pytest.approx(results[3].command)
    assert len(engine.calls) == 5  # no inference while a camera is stale
    resumed = results[6]
    # fresh chunk only (executor reset on activation): [-0.1, 0.4]; stepped from measured [-0.2, 0.3]
    assert resumed.activated and resumed.action == pytest.approx([-0.1, 0.4])
    assert resumed.command == pytest.approx([-0.1, 0.3625])
    assert [(e.kind, e.reason) for e in rt.events] == [
        ("resume", "start"), ("hold", "stale cam0"), ("resume", "stale cam0"),
    ]  # fmt: skip
    stats = rt.stats()
    assert (stats.ticks, stats.commands, stats.holds, stats.hold_events, stats.inferences) == (7, 5, 2, 1, 5)
    assert stats.rate_hz == pytest.approx(8.0) and stats.latency_p50_s is not None and stats.reason == ""


def test_engine_failure_holds_and_recovers(caplog):
    engine = FakeEngine()
    rt = PolicyRuntime(tiny_spec(safety={"require_enable": False}), engine)
    feed(rt, 0.0, [0.0, 0.0])
    assert not rt.tick(0.0).held
    engine.fail = "CUDA out of memory"
    for k in (1, 2):
        feed(rt, 0.125 * k, [0.1, 0.0])
        r = rt.tick(0.125 * k)
        assert r.held and r.reason == "inference failed: RuntimeError: CUDA out of memory"
        assert r.hold_position == pytest.approx([0.1, 0.0625])  # the first command (b step-limited)
    tracebacks = [rec for rec in caplog.records if rec.name == "hpt_ros.runtime" and rec.exc_info]
    assert len(tracebacks) == 1  # logged once, not every tick
    engine.fail = None
    feed(rt, 0.375, [0.1, 0.0])
    r = rt.tick(0.375)
    assert not r.held and r.activated and r.command == pytest.approx([0.2, 0.0625])
    assert rt.stats().inference_failures == 2


def test_bad_engine_outputs_hold():
    engine = FakeEngine()
    rt = PolicyRuntime(tiny_spec(safety={"require_enable": False}), engine)
    feed(rt, 0.0, [0.0, 0.0])
    engine.output = np.zeros((1, 2, 2), np.float32)
    r = rt.tick(0.0)
    assert r.held and r.reason.startswith("inference failed: ValueError: engine returned shape (1, 2, 2)")
    engine.output = np.full((1, 3, 2), np.nan, np.float32)
    feed(rt, 0.125, [0.0, 0.0])
    r = rt.tick(0.125)
    assert r.held and r.reason == "non-finite action" and r.predicted is not None


def test_no_model_always_holds():
    rt = PolicyRuntime(tiny_spec(safety={"require_enable": False}), None)
    for k in range(3):
        feed(rt, 0.125 * k, [0.0, 0.0])
        r = rt.tick(0.125 * k)
        assert r.held and r.reason == "no model" and r.ages["cam0"] == 0.0
    assert [(e.kind, e.reason) for e in rt.events] == [("hold", "no model")]


class OneShotReplan(ReplanExecutor):
    """Replans only at the ticks listed: between them the chunk runs out (horizon 3)."""

    def __init__(self, horizon: int, infer_at: set[int]) -> None:
        super().__init__(horizon, horizon)
        self.infer_at = infer_at

    def needs_inference(self, tick: int) -> bool:
        return tick in self.infer_at


def test_no_action_holds_at_the_last_command_and_resumes_from_measured():
    engine = FakeEngine()
    rt = PolicyRuntime(tiny_spec(safety={"require_enable": False}), engine, executor=OneShotReplan(3, {0, 5}))
    results = []
    for k in range(7):
        feed(rt, 0.125 * k, [0.0, 0.0] if k < 5 else [0.3, 0.2])
        results.append(rt.tick(0.125 * k))
    assert [r.held for r in results] == [False, False, False, True, True, False, False]
    held = results[3]
    assert held.reason == "no action" and held.command is None and held.action is None and held.predicted is None
    assert held.hold_position == pytest.approx(results[2].command)
    assert results[4].reason == "no action"
    resumed = results[5]
    # a fresh chunk from [0.3, 0.2]: step 0 = [0.4, 0.3], stepped from the measured state (b by 0.0625)
    assert resumed.activated and resumed.action == pytest.approx([0.4, 0.3])
    assert resumed.command == pytest.approx([0.4, 0.2625])
    assert [(e.kind, e.reason) for e in rt.events] == [("resume", "start"), ("hold", "no action"),
                                                         ("resume", "no action")]
    assert len(engine.calls) == 2


@pytest.mark.parametrize("case", ["missing", "stale", "invalid"])
def test_bad_joint_states_hold_through_the_controller(case):
    engine = FakeEngine()
    rt = PolicyRuntime(tiny_spec(safety={"require_enable": False}), engine)
    if case != "missing":
        feed(rt, 0.0, [0.0, 0.0])
        first = rt.tick(0.0)
        assert not first.held
    t = 0.125
    cameras_only = np.zeros((4, 6, 3), np.uint8)
    if case == "missing":  # the joint states never arrived
        for cam in ("cam0", "cam1"):
            rt.cache.update(cam, cameras_only, t)
    elif case == "stale":
        feed(rt, t, [0.0, 0.0])
        t = 0.375  # joints last at 0.125: age 0.25 > max_age 0.125; the cameras are fresh
        for cam in ("cam0", "cam1"):
            rt.cache.update(cam, cameras_only, t)
    else:
        feed(rt, t, [0.1, np.nan])
    calls = len(engine.calls)
    r = rt.tick(t)
    assert r.held and r.command is None and r.predicted is None and len(engine.calls) == calls
    assert r.reason == f"{case} joints"
    if case == "missing":
        assert r.hold_position is None and r.ages["joints"] == float("inf")
    else:
        assert r.hold_position == pytest.approx(first.command)
    assert rt.stats().reason == f"{case} joints"
    # good joint states again: commanding resumes, referenced to the measured state
    feed(rt, t + 0.125, [0.2, 0.1])
    r = rt.tick(t + 0.125)
    assert not r.held and r.activated and r.command == pytest.approx([0.3, 0.1625])


def test_clock_jump_back_resets_holds_and_resumes(caplog):
    engine = FakeEngine()
    rt = PolicyRuntime(tiny_spec(safety={"require_enable": False}), engine)
    for k in range(4):  # 100.0 .. 100.375 on the old timeline
        feed(rt, 100.0 + 0.125 * k, [0.1 * k, 0.0])
        assert not rt.tick(100.0 + 0.125 * k).held
    before = rt.stats()
    assert before.ticks == 4 and before.commands == 4

    # the clock loops back to 0 (sim time restarting); a new joint state arrives on the new timeline
    rt.cache.update("joints", np.array([-0.5, 0.25]), 0.0)
    with caplog.at_level("WARNING", logger="hpt_ros.runtime"):
        jump = rt.tick(0.0)
    assert jump.held and jump.reason == CLOCK_JUMP_REASON and jump.tick == 0 and jump.command is None
    assert jump.hold_position is None  # the old command means nothing on the new timeline
    assert any("clock jumped back from t=100.375 to t=0.000" in r.getMessage() for r in caplog.records)
    # everything stamped on the old timeline is gone: the cameras are missing, not "fresh from the future"
    assert all(age == float("inf") for age in jump.ages.values())
    stats = rt.stats()
    assert (stats.ticks, stats.commands, stats.holds) == (1, 0, 1) and stats.reason == CLOCK_JUMP_REASON

    feed(rt, 0.125, [-0.5, 0.25], cameras=("cam1",))
    r = rt.tick(0.125)
    assert r.held and r.reason == "missing cam0" and r.tick == 1
    feed(rt, 0.25, [-0.5, 0.25])
    r = rt.tick(0.25)
    # resumed on the new grid, from the measured state: chunk step 0 = [-0.4, 0.35], b stepped by 0.0625
    assert not r.held and r.activated and r.tick == 2
    assert r.command == pytest.approx([-0.4, 0.3125])
    assert [(e.kind, e.reason) for e in rt.events][-3:] == [
        ("hold", CLOCK_JUMP_REASON), ("hold", "missing cam0"), ("resume", "missing cam0")]
    assert rt.safety.enabled  # the enable state survives the reset


def test_late_tick_is_a_gap_on_the_grid():
    engine = FakeEngine()
    rt = PolicyRuntime(tiny_spec(safety={"require_enable": False}), engine)
    ticks = []
    for t in (10.0, 10.125, 10.39, 10.5):  # 10.25 never fired; 10.39 is a late 10.375
        feed(rt, t, [0.0, 0.0])
        ticks.append(rt.tick(t).tick)
    assert ticks == [0, 1, 3, 4]


def test_replan_infers_every_k_ticks():
    engine = FakeEngine()
    rt = PolicyRuntime(tiny_spec(safety={"require_enable": False}, execution={"mode": "replan"}), engine)
    assert isinstance(rt.executor, ReplanExecutor) and rt.executor.every == 2
    actions = []
    for k in range(4):
        feed(rt, 0.125 * k, [0.0, 0.0])
        r = rt.tick(0.125 * k)
        actions.append(r.action[0])
        assert (r.predicted is not None) == (k % 2 == 0)
    assert actions == pytest.approx([0.1, 0.2, 0.1, 0.2])
    assert len(engine.calls) == 2


def test_engine_that_does_not_fit_the_spec_is_refused():
    with pytest.raises(ValueError, match="horizon 8 .spec: 3."):
        PolicyRuntime(tiny_spec(), FakeEngine(horizon=8))


class RandomEngine(Engine):
    """Wild predictions (far outside the limits, sometimes NaN) to exercise the safety invariants."""

    backend = "random"

    def __init__(self, horizon: int, action_dim: int, seed: int = 0) -> None:
        self.horizon, self.action_dim = horizon, action_dim
        self.rng = np.random.default_rng(seed)

    def predict(self, images: np.ndarray, state: np.ndarray) -> np.ndarray:
        out = self.rng.normal(0.0, 3.0, (1, self.horizon, self.action_dim)).astype(np.float32)
        if self.rng.random() < 0.1:
            out[0, 0, 0] = np.nan
        return out


def test_franka_spec_commands_stay_within_limits_and_steps(franka_spec_path):
    from hpt_ros.spec import load_spec

    spec = load_spec(franka_spec_path)
    # each tick infers inline (synchronous execution), so every tick has a fresh chunk
    spec = dataclasses.replace(spec, execution=dataclasses.replace(spec.execution, asynchronous=False))
    rt = PolicyRuntime(spec, RandomEngine(spec.action.horizon, spec.action.dim))
    lower, upper, velocity = spec.joint_limits_arrays(spec.action.joints)
    max_step = spec.safety.max_velocity_fraction * velocity * spec.period_s
    home = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.02])
    measured = home.astype(np.float32).astype(np.float64)  # the observation's state is float32
    rt.set_enabled(True, 0.0)
    previous = None
    commands = 0
    for k in range(60):
        t = k * spec.period_s
        rt.cache.update("wrist_camera", np.zeros((480, 640, 3), np.uint8), t)
        rt.cache.update("third_person_camera", np.zeros((480, 640, 3), np.uint8), t)
        rt.cache.update("joint_states", home, t)  # the robot does not move: re-activation starts at home
        r = rt.tick(t)
        if r.held:
            assert r.reason == "non-finite action" and r.command is None
            previous = measured
            continue
        commands += 1
        reference = measured if r.activated else previous
        assert np.all(r.command >= lower) and np.all(r.command <= upper)
        assert np.all(np.abs(r.command - reference) <= max_step + 1e-12)
        previous = r.command
    assert commands > 40
