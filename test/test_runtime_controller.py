"""PolicyRuntime over scripted ticks with a fake engine: commands, dry run while disabled,
holds for stale cameras, engine failures, no model, and resumption from the measured state.

Tiny spec (test_runtime_helpers): period 0.125 s, horizon 3, ensembling m = 0.5, step
limits a 0.125 / b 0.0625, camera max_age 0.25 s, joints max_age 0.125 s. The fake
engine predicts ``chunk[i] = state + 0.1 * (i + 1)``.
"""

from __future__ import annotations

import numpy as np
import pytest

from hpt_ros.engine.base import Engine
from hpt_ros.runtime import PolicyRuntime, ReplanExecutor

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
