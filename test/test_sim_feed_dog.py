"""The MuJoCo feed-the-dog scene: seeded layouts, physics, the success test, rendering."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpt_ros.sim import mjcf  # sets MUJOCO_GL before mujoco is imported

from conftest import require_module

require_module("mujoco")

from hpt_ros.sim.feed_dog import FeedDogSim, SceneRenderer, episode_layout  # noqa: E402
from hpt_ros.sim.kinematics import READY_POSE, tcp_position  # noqa: E402

TASK = {"treat_region": {"x": [0.45, 0.62], "y": [-0.15, 0.12]}, "bowl": {"x": 0.42, "y": 0.3}}


@pytest.fixture(scope="module")
def sim() -> FeedDogSim:
    return FeedDogSim(TASK, seed=3, episode=0)


def test_layouts_are_seeded_vary_per_episode_and_stay_in_the_region() -> None:
    a, b = episode_layout(TASK, 3, 5), episode_layout(TASK, 3, 5)
    assert a == b
    treats = np.array([episode_layout(TASK, 3, e).treat_xy for e in range(40)])
    assert len({tuple(t) for t in treats}) == 40
    assert treats[:, 0].min() >= 0.45 and treats[:, 0].max() <= 0.62
    assert treats[:, 1].min() >= -0.15 and treats[:, 1].max() <= 0.12
    assert treats[:, 0].std() > 0.03 and treats[:, 1].std() > 0.05
    assert episode_layout(TASK, 4, 5).treat_xy != a.treat_xy
    assert episode_layout(TASK, 3, 5).bowl_xy == (0.42, 0.3)
    with pytest.raises(ValueError, match="treat_region.x"):
        episode_layout({"treat_region": {"x": [0.6, 0.4], "y": [0, 0.1]}}, 0, 0)


def test_reset_puts_the_arm_at_ready_and_the_treat_where_the_layout_says(sim: FeedDogSim) -> None:
    layout = sim.reset(7)
    q = sim.joint_positions()
    assert np.abs(q[:7] - READY_POSE).max() < 1e-3
    assert q[7] == pytest.approx(0.04, abs=1e-3) and q[8] == pytest.approx(0.04, abs=1e-3)
    treat = sim.treat_position()
    assert np.allclose(treat[:2], layout.treat_xy, atol=2e-3)
    assert treat[2] == pytest.approx(mjcf.TREAT_HALF_HEIGHT, abs=2e-3)  # resting on the table
    assert not sim.success() and sim.time_to_success is None
    # holding still: the position actuators keep the arm and nothing moves the treat
    sim.step(1.0)
    assert np.abs(sim.joint_positions()[:7] - READY_POSE).max() < 2e-3
    assert np.allclose(sim.treat_position(), treat, atol=1e-3)
    assert sim.elapsed == pytest.approx(1.0, abs=0.003)


def test_the_model_tcp_is_the_kinematics_tcp(sim: FeedDogSim) -> None:
    """The expert's IK (Franka's DH parameters) and the MuJoCo arm agree on where the hand is."""
    import mujoco

    rng = np.random.default_rng(0)
    for _ in range(5):
        q = READY_POSE + rng.uniform(-0.4, 0.4, 7)
        sim.data.qpos[sim._arm_qpos] = q
        mujoco.mj_kinematics(sim.model, sim.data)
        assert np.allclose(sim.tcp_position(), tcp_position(q), atol=1e-6)
    sim.reset(0)


def test_arm_follows_targets_and_refuses_unknown_joints(sim: FeedDogSim) -> None:
    sim.reset(1)
    target = READY_POSE + np.array([0.2, 0.15, -0.1, 0.2, 0.1, -0.1, 0.3])
    sim.set_targets(list(mjcf.ARM_JOINTS) + ["fr3_finger_joint1"], [*target, 0.01])
    sim.step(1.5)
    q = sim.joint_positions()
    assert np.abs(q[:7] - target).max() < 5e-3
    assert q[7] == pytest.approx(0.01, abs=2e-3) and q[8] == pytest.approx(0.01, abs=2e-3)
    sim.set_targets(["fr3_joint4"], [5.0])  # beyond the FR3 limit: clamped to it
    assert sim.data.ctrl[3] == pytest.approx(mjcf.FR3_RANGES[3][1])
    with pytest.raises(KeyError, match="fr3_joint9"):
        sim.set_targets(["fr3_joint9"], [0.0])
    sim.reset(1)


def _place_treat(sim: FeedDogSim, xyz) -> None:
    import mujoco

    a = sim._treat_qpos
    sim.data.qpos[a:a + 7] = [*xyz, 1, 0, 0, 0]
    sim.data.qvel[sim._treat_dof:sim._treat_dof + 6] = 0
    mujoco.mj_forward(sim.model, sim.data)


def test_success_is_the_treat_at_rest_inside_the_bowl(sim: FeedDogSim) -> None:
    sim.reset(2)
    bx, by = sim.layout.bowl_xy
    _place_treat(sim, (bx + 0.01, by - 0.01, 0.12))  # above the bowl, falling: not yet
    assert not sim.success()
    sim.step(0.05)
    assert not sim.success() and sim.treat_speed() > SUCCESS_SPEED
    sim.step(1.0)
    assert sim.treat_in_bowl() and sim.success()
    assert 0.05 < sim.time_to_success < 1.05
    # beside the bowl on the table: at rest, but not in the bowl
    sim.reset(2)
    _place_treat(sim, (bx + mjcf.BOWL_INNER_RADIUS + 0.04, by, mjcf.TREAT_HALF_HEIGHT + 0.001))
    sim.step(0.5)
    assert sim.treat_speed() < SUCCESS_SPEED and not sim.treat_in_bowl() and not sim.success()
    assert sim.time_to_success is None


SUCCESS_SPEED = 0.05


def test_rendering_is_deterministic_and_shows_the_scene(sim: FeedDogSim) -> None:
    renderer = SceneRenderer(sim.model, 96, 80)
    sim.reset(0)
    wrist, third = renderer.render(*sim.snapshot())
    assert wrist.shape == third.shape == (80, 96, 3) and wrist.dtype == np.uint8
    again = renderer.render(*sim.snapshot())
    assert np.array_equal(again[0], wrist) and np.array_equal(again[1], third)
    assert wrist.std() > 5 and third.std() > 5  # not a blank frame
    # another episode: the treat elsewhere, the images differ; the arm moved: the wrist view differs
    sim.reset(1)
    other = renderer.render(*sim.snapshot())
    assert np.abs(other[1].astype(int) - third).sum() > 0
    qpos, mocap = sim.snapshot()
    moved = sim.compose_qpos(qpos, joints=[*(READY_POSE + 0.3), 0.04])
    assert np.abs(renderer.render(moved, mocap)[0].astype(int) - other[0]).mean() > 5
    renderer.close()


def test_compose_qpos_rebuilds_the_snapshot_from_joint_states_and_the_treat_pose(sim: FeedDogSim) -> None:
    sim.reset(4)
    sim.set_targets(["fr3_joint1", "fr3_finger_joint1"], [0.3, 0.02])
    sim.step(0.5)
    qpos, _ = sim.snapshot()
    q = sim.joint_positions()
    stale = FeedDogSim(TASK, seed=3, episode=4).snapshot()[0]
    rebuilt = sim.compose_qpos(stale, joints=[*q[:7], q[7]],
                               treat_pose=[*sim.treat_position(), *sim.treat_quaternion()])
    assert np.allclose(rebuilt[sim._arm_qpos], qpos[sim._arm_qpos])
    assert np.allclose(rebuilt[sim._treat_qpos:sim._treat_qpos + 7], qpos[sim._treat_qpos:sim._treat_qpos + 7])
    assert math.isclose(rebuilt[sim._finger_qpos[1]], q[7])  # the mirror finger follows the first


def test_missing_assets_say_what_to_install(monkeypatch) -> None:
    from importlib import metadata

    def missing(name):
        raise metadata.PackageNotFoundError(name)

    monkeypatch.setattr(mjcf.metadata, "distribution", missing)
    with pytest.raises(FileNotFoundError, match="pip install --no-deps dm-robotics-panda"):
        mjcf.assets_dir()
