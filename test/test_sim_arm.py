"""The kinematic arm: exact rate limiting, clamping, the mirrored finger, limits from the spec."""

from __future__ import annotations

import numpy as np
import pytest

from hpt_ros.sim.arm import ARM_JOINTS, FINGER_JOINT, FR3_LIMITS, MIRROR_FINGER_JOINT, KinematicArm
from hpt_ros.sim.kinematics import READY_POSE
from hpt_ros.spec import load_spec


def _one_joint(velocity=1.0, lower=-1.0, upper=1.0, q0=0.0):
    return KinematicArm(["j"], [lower], [upper], [velocity], [q0])


def test_moves_velocity_times_dt_and_stops_exactly():
    arm = _one_joint()
    arm.set_target(["j"], [0.05])
    for k in range(1, 6):
        arm.step(0.01)
        assert arm.positions(["j"])[0] == pytest.approx(0.01 * k, abs=1e-15)
        assert arm.velocities(["j"])[0] == pytest.approx(1.0)
    assert arm.positions(["j"])[0] == 0.05  # exactly on target
    assert arm.at_target
    arm.step(0.01)
    assert arm.positions(["j"])[0] == 0.05
    assert arm.velocities(["j"])[0] == 0.0


def test_last_partial_step_lands_on_target_and_negative_direction():
    arm = _one_joint(q0=0.5)
    arm.set_target(["j"], [0.455])  # 0.045 away: 4 full steps of 0.01 then 0.005
    for _ in range(4):
        arm.step(0.01)
    assert arm.positions(["j"])[0] == pytest.approx(0.46, abs=1e-12)
    arm.step(0.01)
    assert arm.positions(["j"])[0] == 0.455
    assert arm.velocities(["j"])[0] == pytest.approx(-0.5)


def test_targets_clamped_to_limits_nonfinite_and_unknown_ignored():
    arm = _one_joint(lower=-0.2, upper=0.3)
    arm.set_target(["j", "nope"], [5.0, 1.0])
    assert arm.target[0] == 0.3
    for _ in range(100):
        arm.step(0.01)
    assert arm.positions(["j"])[0] == 0.3
    arm.set_target(["j"], [-5.0])
    assert arm.target[0] == -0.2
    arm.set_target(["j"], [float("nan")])
    assert arm.target[0] == -0.2
    with pytest.raises(ValueError):
        arm.set_target(["j"], [0.1, 0.2])
    with pytest.raises(KeyError):
        arm.positions(["nope"])


def test_each_joint_limited_by_its_own_velocity():
    arm = KinematicArm(["a", "b"], [-5, -5], [5, 5], [1.0, 3.0], [0.0, 0.0])
    arm.set_target(["b", "a"], [1.0, 1.0])
    arm.step(0.1)
    np.testing.assert_allclose(arm.positions(["a", "b"]), [0.1, 0.3])
    np.testing.assert_allclose(arm.velocities(["a", "b"]), [1.0, 3.0])


def test_q0_is_clamped_and_reset():
    arm = _one_joint(lower=0.0, upper=1.0, q0=2.0)
    assert arm.q[0] == 1.0
    arm.set_target(["j"], [0.0])
    arm.step(0.1)
    arm.reset([0.25])
    assert arm.q[0] == 0.25 and arm.target[0] == 0.25 and arm.velocities()[0] == 0.0


def test_finger_mirrored_and_capped():
    names = list(ARM_JOINTS) + [FINGER_JOINT]
    lower = [FR3_LIMITS[n][0] for n in names]
    upper = [FR3_LIMITS[n][1] for n in names]
    upper[-1] = 0.08  # a generous spec: the hand still stops at 0.04 per finger
    velocity = [FR3_LIMITS[n][2] for n in names]
    arm = KinematicArm(names, lower, upper, velocity, list(READY_POSE) + [0.0])
    assert arm.names == tuple(names) + (MIRROR_FINGER_JOINT,)
    arm.set_target([FINGER_JOINT, MIRROR_FINGER_JOINT], [1.0, 0.0])  # the mirror is not commandable
    assert arm.target[-1] == 0.04
    for _ in range(100):
        arm.step(0.01)  # 0.05 m/s -> 0.0005 per step -> 80 steps
    pos = arm.positions([FINGER_JOINT, MIRROR_FINGER_JOINT])
    assert pos[0] == 0.04 and pos[1] == 0.04
    assert len(arm.positions()) == 9
    with pytest.raises(ValueError):
        KinematicArm(names + [MIRROR_FINGER_JOINT], lower + [0], upper + [0.04], velocity + [0.05])


def test_from_spec_uses_spec_limits(franka_spec_path):
    spec = load_spec(franka_spec_path)
    arm = KinematicArm.from_spec(spec)
    assert arm.joint_names == spec.action.joints
    lower, upper, velocity = spec.joint_limits_arrays(spec.action.joints)
    np.testing.assert_array_equal(arm.velocity, velocity)
    np.testing.assert_array_equal(arm.lower, lower)
    np.testing.assert_array_equal(arm.upper, np.minimum(upper, [np.inf] * 7 + [0.04]))
    np.testing.assert_allclose(arm.positions(ARM_JOINTS), READY_POSE)
    # FR3_LIMITS (used where no spec is at hand) agree with the shipped spec
    for name, lim in spec.limits.items():
        assert FR3_LIMITS[name] == (lim.lower, lim.upper, lim.velocity)
    fr3 = KinematicArm.fr3()
    np.testing.assert_array_equal(fr3.velocity, arm.velocity)
    np.testing.assert_array_equal(fr3.q, arm.q)
