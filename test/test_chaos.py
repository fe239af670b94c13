"""The fault-injection campaign: a small seeded subset shows the zeros, and the checker sees
what it must count (so a zero means something)."""

from __future__ import annotations

import json
import logging

import numpy as np
import pytest

from hpt_ros.chaos.campaign import summarise, write_report
from hpt_ros.chaos.checker import COUNTS, SafetyChecker
from hpt_ros.chaos.faults import IN_PROCESS_FAULTS, plan_faults
from hpt_ros.chaos.process_cases import run_recorder_case
from hpt_ros.chaos.replay_case import run_replay_case
from hpt_ros.msgs import messages
from hpt_ros.ros.replay import ReplayTransport
from hpt_ros.spec import load_spec

SPEC = load_spec("franka_fr3")


@pytest.fixture(autouse=True)
def quiet_nodes():
    logger = logging.getLogger("hpt_ros")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    yield
    logger.setLevel(level)


def test_plans_are_seeded_and_draw_the_listed_faults() -> None:
    a = plan_faults(np.random.default_rng(3), IN_PROCESS_FAULTS, 4.0, count=50, camera_topics=["/a", "/b"])
    b = plan_faults(np.random.default_rng(3), IN_PROCESS_FAULTS, 4.0, count=50, camera_topics=["/a", "/b"])
    assert a == b and {f.kind for f in a} <= set(IN_PROCESS_FAULTS) and len({f.kind for f in a}) > 5


def _checker_world(enabled: bool, node_counts=None):
    world = ReplayTransport("chaos_checker", start_time=10.0, record=False)
    checker = SafetyChecker(world, SPEC, "/joint_states", lambda: "", node_counts=node_counts)
    state_pub = world.create_publisher("/joint_states", "sensor_msgs/msg/JointState")
    enable_pub = world.create_publisher(SPEC.safety.enable_topic, "std_msgs/msg/Bool")
    command_pub = world.create_publisher(SPEC.action.command.topic, SPEC.action.command.type)
    ready = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])

    def send(arm: np.ndarray) -> None:
        msg = messages.fill_joint_trajectory(world.new_message(SPEC.action.command.type), SPEC.action.arm_joints,
                                             np.nan_to_num(arm), world.now(), 0.1)
        msg.points[-1].positions = np.asarray(arm, dtype=np.float64)  # the message helpers refuse NaN themselves
        command_pub.publish(msg)

    state_pub.publish(messages.fill_joint_state(world.new_message("sensor_msgs/msg/JointState"),
                                                list(SPEC.state_joints), [*ready, 0.04], stamp_s=10.0))
    enable = world.new_message("std_msgs/msg/Bool")
    enable.data = enabled
    enable_pub.publish(enable)
    return world, checker, ready, send


def test_the_checker_counts_each_kind_of_unsafe_command() -> None:
    world, checker, ready, send = _checker_world(enabled=True)
    step = SPEC.safety.max_velocity_fraction * 2.62 / SPEC.rate_hz
    bad = {
        "outside_limits": ready + np.array([0, 0, 0, 2.5, 0, 0, 0]),         # joint 4 above its upper limit
        "step_too_large": ready + np.array([3 * step, 0, 0, 0, 0, 0, 0]),    # a jump from the measured pose
        "non_finite": ready + np.array([np.nan, 0, 0, 0, 0, 0, 0]),
    }
    for i, (kind, arm) in enumerate(bad.items()):
        world.run(until=10.5 + i)  # a second apart: each is a first command, referenced to the measured pose
        before = checker.counts[kind]
        send(arm)
        world.run(until=10.6 + i)
        assert checker.counts[kind] == before + 1, (kind, checker.counts)
    # the TCP into the table: a pose within limits whose hand is below z = 0
    world.run(until=14.0)
    checker._states.clear()  # no reference: any TCP outside counts
    checker._last.clear()
    before = checker.counts["outside_workspace"]
    send(np.array([0.0, 1.7, 0.0, -0.2, 0.0, 1.0, 0.785]))
    world.run(until=14.1)
    assert checker.counts["outside_workspace"] == before + 1, checker.examples
    # ticks without commands and without a hold reason
    world.run(until=16.0)
    assert checker.finish()["holds_unexplained"] >= 1


@pytest.mark.parametrize("node", ["commanding", "stalled", "holding"])
def test_a_gap_between_processes_is_judged_by_the_nodes_own_counters(node: str) -> None:
    """Commands that arrive late while the node kept commanding, or a loop that did not run,
    are reported apart; a node that ticked without commanding or a reason is still a violation."""
    counters = {"ticks": 0, "commands": 0}
    world, checker, ready, send = _checker_world(True, lambda: (counters["ticks"], counters["commands"]))

    def node_tick() -> None:
        if node != "stalled":
            counters["ticks"] += 1
        if node == "commanding":
            counters["commands"] += 1

    world.create_timer(SPEC.period_s, node_tick)
    world.run(until=10.05)
    send(ready)  # a command right after enabling, then a second of none arriving
    world.run(until=11.05)
    send(ready)
    world.run(until=11.1)
    counts = checker.finish()
    late, stalled, unexplained = checker.late_deliveries, checker.stalled_loops, counts["holds_unexplained"]
    assert (late, stalled, unexplained) == {"commanding": (1, 0, 0), "stalled": (0, 1, 0),
                                            "holding": (0, 0, 1)}[node]


def test_the_checker_counts_commands_while_disabled() -> None:
    world, checker, ready, send = _checker_world(enabled=False)
    world.run(until=10.5)
    send(ready)
    world.run(until=10.6)
    assert checker.finish()["while_disabled"] == 1


def test_seeded_replay_runs_show_the_zeros() -> None:
    results = [run_replay_case(seed, duration=3.0) for seed in (0, 1, 2)]
    for r in results:
        assert r["counts"] == dict.fromkeys(COUNTS, 0), (r["seed"], r["examples"])
        assert r["commands"] > 0 and r["injected"], r  # it commanded, and faults really happened
    kinds = {k for r in results for k in r["injected"]}
    assert len(kinds) >= 5, kinds


def test_a_killed_recorder_loses_at_most_a_second_and_a_full_disk_is_a_clean_error(tmp_path) -> None:
    killed = run_recorder_case(11, "recorder_sigkill")
    assert killed["returncode"] == -9 and killed["messages_recovered"] > 0, killed
    assert killed["lost_s"] <= 1.0, killed
    full = run_recorder_case(12, "disk_full")
    assert full["clean_error"] and not full.get("hung"), full
    summary = write_report([killed, full], tmp_path, 11)
    assert summary == summarise([killed, full]) and summary["passed"], summary["failures"]
    report = json.loads((tmp_path / "chaos_report.json").read_text())
    assert report["summary"]["recorder_kills"] == 1 and (tmp_path / "chaos_report.md").read_text().startswith("#")
