"""The scripted feed-the-dog expert, closed loop on the MuJoCo physics (no ROS)."""

from __future__ import annotations

import numpy as np
import pytest

from hpt_ros.sim import mjcf  # sets MUJOCO_GL before mujoco is imported

from conftest import require_module

require_module("mujoco")

from hpt_ros.sim.expert import PHASES, FeedDogExpert  # noqa: E402
from hpt_ros.sim.feed_dog import FeedDogSim  # noqa: E402
from hpt_ros.spec import load_spec  # noqa: E402

SPEC = load_spec("franka_fr3")
NAMES = list(SPEC.action.joints)
RATE = SPEC.rate_hz


def _expert(seed: int, **kw) -> FeedDogExpert:
    return FeedDogExpert(*SPEC.joint_limits_arrays(NAMES), rate_hz=RATE,
                         max_velocity_fraction=SPEC.safety.max_velocity_fraction, rng=seed, **kw)


def _run(sim: FeedDogSim, expert: FeedDogExpert, seconds: float, on_tick=None):
    phases, targets = [], []
    for k in range(int(seconds * RATE)):
        q = sim.joint_positions()[:8]
        target = expert.next_target(q, sim.treat_position(), sim.layout.bowl_xy)
        targets.append(target)
        phases.append(expert.phase)
        sim.set_targets(NAMES, target)
        sim.step(1.0 / RATE)
        if on_tick is not None:
            on_tick(k, sim, expert)
    return phases, np.array(targets)


@pytest.mark.parametrize("episode", [0, 5])
def test_the_expert_feeds_the_dog_through_every_phase_within_the_step_limit(episode: int) -> None:
    sim = FeedDogSim(seed=21, episode=episode)
    expert = _expert(episode, noise=0.01, perturbation=0.03)
    phases, targets = _run(sim, expert, 12.0)
    assert sim.success() and sim.time_to_success is not None and sim.time_to_success < 11.0
    seen = list(dict.fromkeys(phases))
    assert seen == list(PHASES), seen
    # never a target further from the last one than twice the safety filter's per-tick step, plus the noise
    max_step = SPEC.safety.max_velocity_fraction * SPEC.joint_limits_arrays(NAMES)[2] / RATE
    steps = np.abs(np.diff(targets, axis=0))
    assert (steps[:, 7] <= max_step[7] + 1e-9).all(), "the finger ramps at the allowed rate"
    assert (steps[:, :7] <= 2 * max_step[:7] + 0.2).all()


def test_a_treat_that_slips_out_is_picked_again() -> None:
    sim = FeedDogSim(seed=21, episode=1)
    expert = _expert(1)
    dropped = []

    def knock_out(k, sim, expert):
        if expert.phase == "carry" and not dropped:  # the treat leaves the hand mid-way
            a = sim._treat_qpos
            sim.data.qpos[a:a + 7] = [0.55, -0.05, mjcf.TREAT_HALF_HEIGHT + 0.002, 1, 0, 0, 0]
            sim.data.qvel[sim._treat_dof:sim._treat_dof + 6] = 0
            dropped.append(k)

    phases, _ = _run(sim, expert, 20.0, knock_out)
    assert dropped, "the expert never carried the treat"
    after = phases[dropped[0]:]
    assert "approach" in after and expert.regrasps == 1
    assert sim.success()


def test_the_noise_is_seeded_and_the_input_checked() -> None:
    a = _run(FeedDogSim(seed=2, episode=0), _expert(4, noise=0.01), 1.0)[1]
    b = _run(FeedDogSim(seed=2, episode=0), _expert(4, noise=0.01), 1.0)[1]
    c = _run(FeedDogSim(seed=2, episode=0), _expert(5, noise=0.01), 1.0)[1]
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ValueError, match="7 arm joints and the finger"):
        _expert(0).next_target(np.zeros(7), np.zeros(3), (0.4, 0.3))


def test_a_rough_line_up_is_corrected_on_the_way_down() -> None:
    from hpt_ros.sim.kinematics import TCP_INDEX, forward_kinematics

    sim = FeedDogSim(seed=21, episode=3)
    expert = _expert(3, approach_error=0.04)
    offset = expert._approach_offset[:2].copy()
    assert 0.0 < np.linalg.norm(offset) <= 0.04
    at_phase_end: dict[str, np.ndarray] = {}

    def watch(k, sim, expert):
        tcp = forward_kinematics(sim.joint_positions()[:7])[TCP_INDEX][:3, 3]
        at_phase_end.setdefault(expert.phase, tcp)  # the first tick of each phase: where the last one ended

    _run(sim, expert, 12.0, watch)
    treat_xy = np.array(sim.layout.treat_xy)
    lined_up, grasping = at_phase_end["descend"][:2], at_phase_end["grasp"][:2]
    # it hovered where it lined up (off the treat by the offset), then closed over the treat itself
    assert np.linalg.norm(lined_up - (treat_xy + offset)) < 0.015
    assert np.linalg.norm(grasping - treat_xy) < 0.012 < np.linalg.norm(lined_up - treat_xy)
    assert sim.success()


@pytest.mark.parametrize("height, off, finger, expected", [
    (0.08, 0.03, 0.04, "descend"),  # 3 cm off, 6 cm above the grasp: centre on the way down
    (0.04, 0.03, 0.04, "approach"),  # 3 cm off but the fingertips at the treat: back up over it first
    (0.10, 0.05, 0.04, "approach"),  # too far off to centre while descending
    (0.08, 0.02, 0.02, "approach"),  # the fingers half closed beside the treat
    (0.05, 0.005, 0.04, "descend"),  # over the treat
    (0.115, 0.005, 0.04, "approach"),  # at the hover height: an ordinary approach
    (0.034, 0.004, 0.02, "descend"),  # closing over the treat, a centimetre too high: open, go lower
    (0.024, 0.004, 0.02, "lift"),  # closing around the treat at the grasp height: pick it up
])
def test_the_takeover_phase_follows_from_the_height_and_the_offset(height, off, finger, expected) -> None:
    expert = _expert(0)
    treat = np.array([0.5, 0.1, 0.015])
    tcp = np.array([treat[0] + off * 0.6, treat[1] - off * 0.8, height])
    assert expert._takeover_phase(tcp, finger, treat, (0.3, -0.3)) == expected


@pytest.mark.parametrize("handover_phase, approach_error, expected", [
    ("descend", 0.05, "descend"),  # low, 2+ cm off the treat, fingers open: centre on it on the way down
    ("descend", 0.0, "descend"),  # low, over the treat, fingers open
    ("carry", 0.0, "carry"),  # the treat in hand, at the carry height: lift is done at once, carry on
    ("done", 0.0, "done"),  # the treat already in the bowl: hold above it, never pick it out again
])
def test_the_expert_takes_over_from_another_controllers_state(handover_phase: str, approach_error: float,
                                                              expected: str) -> None:
    """DAgger-style data: a fresh expert picks its phase from the state it is handed and finishes."""
    from hpt_ros.sim.kinematics import TCP_INDEX, forward_kinematics

    sim = FeedDogSim(seed=21, episode=4)
    first = _expert(4, approach_error=approach_error)
    ticks = [0]

    def until_handover(k, sim, expert):
        if expert.phase == handover_phase:
            ticks[0] += 1

    # the first controller runs until 0.4 s into the phase, then stops (a policy being switched off)
    for _ in range(int(14 * RATE)):
        _run(sim, first, 1.0 / RATE, until_handover)
        if ticks[0] >= int(0.4 * RATE):
            break
    assert first.phase == handover_phase
    tcp = forward_kinematics(sim.joint_positions()[:7])[TCP_INDEX][:3, 3]
    off = np.linalg.norm(tcp[:2] - sim.treat_position()[:2])
    second = _expert(40)
    at_grasp = []

    def grasping(k, sim, expert):
        if expert.phase == "grasp" and not at_grasp:
            hand = forward_kinematics(sim.joint_positions()[:7])[TCP_INDEX][:2, 3]
            at_grasp.append(float(np.linalg.norm(hand - sim.treat_position()[:2])))

    phases, targets = _run(sim, second, 12.0, grasping)
    assert phases[0] == expected, (phases[0], off)
    if approach_error > 0:  # handed over low and off the treat: it centred and closed on the treat
        assert off > 0.02 and tcp[2] < second.hover_height
        assert "approach" not in phases and at_grasp[0] < 0.012, at_grasp
    assert sim.success()
    if expected == "done":
        assert set(phases) == {"done"} and targets[:, 7].min() > 0.03
    if expected == "carry":  # it keeps squeezing the treat it was handed: no reopening from a fresh expert's open hand
        assert targets[0][7] < 0.03


def test_a_missed_first_grasp_is_recovered_and_the_share_checked() -> None:
    sim = FeedDogSim(seed=3, episode=1)
    expert = _expert(1, noise=0.01, perturbation=0.03, missed_grasp=1.0)
    closes = []

    def first_close(k, sim, expert):
        if expert.phase == "grasp" and not closes:
            closes.append(np.linalg.norm(sim.tcp_position()[:2] - sim.treat_position()[:2]))

    phases, _ = _run(sim, expert, 15.0, first_close)
    # the first grasp closes 2-3.5 cm beside the treat, the expert sees the empty hand and picks it up after all
    assert closes and closes[0] > 0.015, closes
    assert expert.regrasps == 1 and sim.success()
    assert phases.count("grasp") > 0 and "approach" in phases[phases.index("grasp"):]
    for bad in (-0.1, 1.5):
        with pytest.raises(ValueError, match="missed_grasp"):
            _expert(0, missed_grasp=bad)
    with pytest.raises(ValueError, match="miss_distance"):
        _expert(0, missed_grasp=0.5, miss_distance=(0.03, 0.02))


def test_a_grasp_closing_too_high_is_opened_and_made_again_lower() -> None:
    """A controller that closes a centimetre above the grasp height (a policy's typical miss: the
    pads meet the treat's top edge) is handed over: the expert opens, goes down and picks it."""
    sim = FeedDogSim(seed=21, episode=2)
    first = _expert(2, grasp_height=0.034)
    ticks = [0]

    def until_handover(k, sim, expert):
        ticks[0] += expert.phase == "grasp"

    while ticks[0] < int(0.5 * RATE):
        _run(sim, first, 1.0 / RATE, until_handover)
    finger = sim.joint_positions()[7]
    assert 0.006 < finger < 0.03, finger
    second = _expert(41)
    phases, targets = _run(sim, second, 12.0)
    assert phases[0] == "descend"
    reopened = int(np.argmax(targets[:, 7] >= 0.04))
    assert reopened > 0 and "grasp" not in phases[:reopened + 1]
    assert sim.success()
