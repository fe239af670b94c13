"""Safety filter: limits, step clamp from the last command, activation from the measured state,
NaN holds, the enable gate, and one event per transition.

Tiny spec (test_runtime_helpers): period 0.125 s, fraction 0.5 ->
max step a = 0.125 (limits -1..1), b = 0.0625 (limits 0..0.5).
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from hpt_ros.runtime import SafetyFilter
from hpt_ros.spec import parse_spec

from test_runtime_helpers import tiny_data, tiny_spec

NAN = float("nan")


def kinds(f: SafetyFilter) -> list[tuple[str, str]]:
    return [(e.kind, e.reason) for e in f.events]


def test_starts_disabled_and_holds_with_nothing_to_hold():
    f = SafetyFilter(tiny_spec())
    r = f.filter([0.0, 0.0], [0.0, 0.0], now=0.0)
    assert r.held and r.command is None and r.reason == "disabled" and r.hold_position is None
    assert kinds(f) == [("hold", "disabled")]
    assert SafetyFilter(tiny_spec(safety={"require_enable": False})).enabled


def test_first_command_from_measured_then_from_last_command():
    f = SafetyFilter(tiny_spec())
    f.set_enabled(True, now=0.0)
    r = f.filter([0.9, 0.4], measured=[0.2, 0.1], now=0.125)
    assert not r.held and r.activated and r.clamped
    assert r.command == pytest.approx([0.325, 0.1625])  # 0.2 + 0.125, 0.1 + 0.0625
    # while commanding, the reference is the last command, not the measurement
    r = f.filter([0.9, 0.4], measured=[0.0, 0.0], now=0.25)
    assert not r.activated
    assert r.command == pytest.approx([0.45, 0.225])
    r = f.filter([0.46, 0.2], measured=[0.0, 0.0], now=0.375)  # within one step: unchanged
    assert r.command == pytest.approx([0.46, 0.2]) and not r.clamped
    assert kinds(f) == [("resume", "start")]


def test_limits_clamp():
    f = SafetyFilter(tiny_spec(safety={"require_enable": False}))
    r = f.filter([0.95, 0.45], measured=[0.95, 0.45], now=0.0)
    assert r.command == pytest.approx([0.95, 0.45]) and not r.clamped
    r = f.filter([1.5, -0.3], measured=[0.95, 0.45], now=0.125)
    # step: 0.95 + 0.125 = 1.075 -> limit 1.0; 0.45 - 0.0625 = 0.3875 (inside 0..0.5)
    assert r.command == pytest.approx([1.0, 0.3875]) and r.clamped
    # a measurement beyond the limits on activation still yields a command inside them
    g = SafetyFilter(tiny_spec(safety={"require_enable": False}))
    r = g.filter([1.2, 0.6], measured=[1.02, 0.52], now=0.0)
    assert r.command == pytest.approx([1.0, 0.5])


def test_reenable_starts_from_measured_state():
    f = SafetyFilter(tiny_spec())
    f.set_enabled(True, now=0.0)
    f.filter([0.9, 0.4], measured=[0.2, 0.1], now=0.125)
    last = f.filter([0.9, 0.4], measured=[0.2, 0.1], now=0.25).command
    assert last == pytest.approx([0.45, 0.225])
    f.set_enabled(False, now=0.3)  # the hold event is recorded when the operator lets go
    for t in (0.375, 0.5, 0.625):
        r = f.filter([0.9, 0.4], measured=[0.45, 0.225], now=t)
        assert r.held and r.reason == "disabled" and r.command is None
        assert r.hold_position == pytest.approx(last)
    f.set_enabled(True, now=0.7)
    # robot was moved meanwhile (measured -0.5, 0.3): steps start there, not at the last command 0.45
    r = f.filter([0.0, 0.3], measured=[-0.5, 0.3], now=0.75)
    assert r.activated and r.command == pytest.approx([-0.375, 0.3])
    assert kinds(f) == [("resume", "start"), ("hold", "disabled"), ("resume", "disabled")]
    assert [e.time for e in f.events] == [0.125, 0.3, 0.75]


def test_nan_holds_then_resumes_from_measured(caplog):
    f = SafetyFilter(tiny_spec(safety={"require_enable": False}))
    f.filter([0.1, 0.1], measured=[0.1, 0.1], now=0.0)
    with caplog.at_level(logging.INFO, logger="hpt_ros.safety"):
        for i, bad in enumerate(([NAN, 0.1], [0.1, float("inf")], [NAN, NAN])):
            r = f.filter(bad, measured=[0.1, 0.1], now=0.125 * (i + 1))
            assert r.held and r.reason == "non-finite action" and r.command is None
            assert r.hold_position == pytest.approx([0.1, 0.1])
        r = f.filter([0.5, 0.1], measured=[0.2, 0.1], now=0.5)
    assert not r.held and r.activated
    assert r.command == pytest.approx([0.325, 0.1])  # from the measured 0.2, not the last command 0.1
    assert kinds(f) == [("resume", "start"), ("hold", "non-finite action"), ("resume", "non-finite action")]
    messages = [rec.getMessage() for rec in caplog.records if rec.name == "hpt_ros.safety"]
    assert len(messages) == 2 and "non-finite action" in messages[0] and "resume" in messages[1]


def test_external_holds_logged_once_per_reason():
    f = SafetyFilter(tiny_spec(safety={"require_enable": False}))
    f.filter([0.1, 0.1], measured=[0.1, 0.1], now=0.0)
    for t in (0.125, 0.25, 0.375):
        r = f.hold("stale cam0", t)
        assert r.held and r.hold_position == pytest.approx([0.1, 0.1])
    f.hold("inference failed: boom", 0.5)  # a new reason while held is a new event
    f.hold("inference failed: boom", 0.625)
    assert f.hold_reason == "inference failed: boom"
    f.filter([0.1, 0.1], measured=[0.1, 0.1], now=0.75)
    assert f.hold_reason == ""
    assert kinds(f) == [
        ("resume", "start"),
        ("hold", "stale cam0"),
        ("hold", "inference failed: boom"),
        ("resume", "inference failed: boom"),
    ]


def test_joint_missing_from_state_uses_last_command():
    data = tiny_data()
    data["stems"]["state"]["dim"] = 1
    data["sensors"]["joints"]["joints"] = ["a"]
    spec = parse_spec(data, "tiny.yaml")
    f = SafetyFilter(spec)
    f.set_enabled(True, 0.0)
    measured = f.measured_from_state(np.array([0.2], dtype=np.float32))
    assert measured[0] == pytest.approx(0.2) and np.isnan(measured[1])
    r = f.filter([0.9, 0.7], measured, now=0.125)
    # a: stepped from measured; b: never commanded, unknown -> limits only
    assert r.command == pytest.approx([0.325, 0.5])
    f.hold("stale cam0", 0.25)
    r = f.filter([0.9, 0.0], measured, now=0.375)  # re-activation: b steps from its last command 0.5
    assert r.command == pytest.approx([0.325, 0.4375])


def test_ee_twist_clamps_speed_and_change_from_rest():
    data = tiny_data()
    data["action"] = {"kind": "ee_twist", "horizon": 3, "frame": "base",
                      "command": {"topic": "/twist", "type": "geometry_msgs/msg/TwistStamped"}}
    f = SafetyFilter(parse_spec(data, "twist.yaml"))
    f.set_enabled(True, 0.0)
    action = [1.0, 0.0, -0.1, 0.0, 0.0, -1.0]
    measured = f.measured_from_state(np.array([0.0, 0.0]))
    assert np.isnan(measured).all()
    # change per tick: 0.5 * 2.0 * 0.125 = 0.125 m/s, 0.5 * 4.0 * 0.125 = 0.25 rad/s, from a zero twist
    r = f.filter(action, measured, 0.125)
    assert r.command == pytest.approx([0.125, 0, -0.1, 0, 0, -0.25])
    r = f.filter(action, measured, 0.25)
    # speed limits: 0.5 * 0.5 = 0.25 m/s, 0.5 * 1.0 = 0.5 rad/s
    assert r.command == pytest.approx([0.25, 0, -0.1, 0, 0, -0.5])
    r = f.hold("stale cam0", 0.375)
    assert r.hold_position == pytest.approx([0.0] * 6)  # holding a twist means stopping


def test_ee_pose_step_clamp_wraps_angles():
    data = tiny_data()
    data["action"] = {"kind": "ee_pose", "horizon": 3, "frame": "base",
                      "command": {"topic": "/pose", "type": "geometry_msgs/msg/PoseStamped"}}
    f = SafetyFilter(parse_spec(data, "pose.yaml"))
    f.set_enabled(True, 0.0)
    unknown = np.full(6, np.nan)
    first = [0.5, 0.0, 0.3, 0.0, 0.0, 3.1]
    r = f.filter(first, unknown, 0.125)  # no measured pose: passed through
    assert r.command == pytest.approx(first) and not r.clamped
    # steps: 0.5 * 0.5 * 0.125 = 0.03125 m, 0.5 * 1.0 * 0.125 = 0.0625 rad; yaw 3.1 -> -3.1 is +0.0832 across pi
    r = f.filter([0.6, 0.0, 0.3, 0.0, 0.0, -3.1], unknown, 0.25)
    assert r.command[:5] == pytest.approx([0.53125, 0.0, 0.3, 0.0, 0.0])
    assert r.command[5] == pytest.approx(3.1625 - 2 * np.pi)
    with pytest.raises(ValueError, match="6 values"):
        f.filter([0.0] * 5, unknown, 0.375)
