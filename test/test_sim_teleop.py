"""The scripted teleoperator brings the hand over the bowl within the velocity limits, deterministically."""

from __future__ import annotations

import numpy as np
import pytest

from hpt_ros.sim.arm import ARM_JOINTS, FINGER_JOINT, KinematicArm
from hpt_ros.sim.scene import FeedDogScene
from hpt_ros.sim.teleop import ScriptedTeleoperator
from hpt_ros.spec import load_spec

RATE_HZ = 15.0


def _episode(scene, teleop, arm, seconds=20.0):
    """Run at 15 Hz; returns (first success time or None, targets, positions before each tick)."""
    dt = 1.0 / RATE_HZ
    first, targets, states = None, [], []
    for tick in range(int(seconds * RATE_HZ)):
        q = arm.positions(teleop.joint_names)
        target = teleop(q)
        states.append(q)
        targets.append(target)
        arm.set_target(teleop.joint_names, target)
        arm.step(dt)
        if first is None and scene.success(arm.positions(ARM_JOINTS)):
            first = (tick + 1) * dt
    return first, np.array(targets), np.array(states)


@pytest.mark.parametrize("episode", list(np.random.default_rng(99).integers(0, 10_000, 5)))
def test_reaches_over_the_bowl_within_velocity_limits(episode, franka_spec_path):
    spec = load_spec(franka_spec_path)
    scene = FeedDogScene(seed=11, episode=int(episode))
    arm = KinematicArm.from_spec(spec)
    teleop = ScriptedTeleoperator(scene, spec.action.arm_joints, np.random.default_rng(int(episode)), noise=0.002)
    assert teleop.joint_names == spec.action.joints
    first, targets, states = _episode(scene, teleop, arm)
    assert first is not None and first < 20.0, f"never over the bowl at {scene.target_position}"
    assert teleop.done
    assert scene.success(arm.positions(ARM_JOINTS))  # and it stays there
    assert arm.positions([FINGER_JOINT])[0] == pytest.approx(0.04)  # gripper open over the bowl
    # every commanded step is within the velocity limit for one 15 Hz tick (and the safety fraction)
    _, _, velocity = spec.joint_limits_arrays(spec.action.joints)
    step = np.abs(targets - states)
    assert (step <= spec.safety.max_velocity_fraction * velocity / RATE_HZ + 1e-12).all()
    # targets inside the joint limits
    lower, upper, _ = spec.joint_limits_arrays(spec.action.joints)
    assert (targets >= lower).all() and (targets <= upper).all()


def test_deterministic_for_a_seeded_rng_and_noisy_across_seeds():
    scene = FeedDogScene(5, 5)
    runs = []
    for seed in (3, 3, 4):
        _, targets, _ = _episode(scene, ScriptedTeleoperator(scene, rng=seed), KinematicArm.fr3(), seconds=2.0)
        runs.append(targets)
    np.testing.assert_array_equal(runs[0], runs[1])
    assert not np.array_equal(runs[0], runs[2])
    quiet = _episode(scene, ScriptedTeleoperator(scene, rng=3, noise=0.0), KinematicArm.fr3(), seconds=2.0)[1]
    assert 0 < np.abs(runs[0] - quiet).max() < 0.05


def test_actions_depend_on_the_bowl():
    a, b = FeedDogScene(0, 1), FeedDogScene(0, 2)
    assert np.linalg.norm(a.target_position - b.target_position) > 0.02
    ta = ScriptedTeleoperator(a, noise=0.0)(KinematicArm.fr3().positions(ARM_JOINTS))
    tb = ScriptedTeleoperator(b, noise=0.0)(KinematicArm.fr3().positions(ARM_JOINTS))
    assert np.abs(ta - tb).max() > 1e-3


def test_joint_order_follows_the_caller():
    scene = FeedDogScene(1, 1)
    order = ARM_JOINTS[::-1]
    arm = KinematicArm.fr3()
    plain = ScriptedTeleoperator(scene, rng=0, noise=0.0)(arm.positions(ARM_JOINTS + (FINGER_JOINT,)))
    rev = ScriptedTeleoperator(scene, order, rng=0, noise=0.0)(arm.positions(order + (FINGER_JOINT,)))
    np.testing.assert_allclose(rev[:7], plain[:7][::-1], atol=1e-12)
    assert rev[7] == plain[7]
    with pytest.raises(ValueError):
        ScriptedTeleoperator(scene, ARM_JOINTS[:6])
