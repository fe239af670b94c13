"""Workspace limits: the spec's box and keep-out planes keep the TCP out of the table and inside
the work area, for joint commands (forward kinematics), end-effector poses and twists; the
first end-effector pose after activation is stepped from the measured pose."""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest

from hpt_ros.engine.base import Engine
from hpt_ros.runtime import PolicyRuntime, SafetyFilter
from hpt_ros.runtime.kinematics import DHChain, rpy_from_matrix, rpy_matrix
from hpt_ros.runtime.workspace import Workspace
from hpt_ros.sim.kinematics import DH_PARAMS, READY_POSE, ik_step, tcp_pose
from hpt_ros.spec import SpecError, load_spec, parse_spec

SPEC = load_spec("franka_fr3")
TABLE_Z = 0.005  # table top z = 0 plus the spec's 5 mm clearance
CHAIN = DHChain.from_spec(SPEC.workspace.kinematics)
GRIPPER = 0.02
HOME = np.append(READY_POSE, GRIPPER)  # TCP at (0.307, 0, 0.487)


def variant(change, spec=SPEC):
    raw = copy.deepcopy(spec.raw)
    change(raw)
    return parse_spec(raw, "<variant>")


# the runtime tests tick a live-clock runtime and want each tick's own inference (synchronous execution)
SYNC_SPEC = variant(lambda raw: raw["execution"].update({"async": False}))


def joints_reaching(xyz, start=READY_POSE, iterations=300):
    """Arm joints whose TCP is at ``xyz`` (damped least squares from ``start``, within the joint limits)."""
    lower, upper, _ = SPEC.joint_limits_arrays(SPEC.action.joints[:7])
    q = np.array(start, dtype=np.float64)
    for _ in range(iterations):
        q = np.clip(q + ik_step(q, xyz), lower, upper)
    return q


def track(f: SafetyFilter, action, start, ticks: int):
    """Commands of ``ticks`` ticks of ``action`` on a robot that reaches every command (measured = command)."""
    measured = np.array(start, dtype=np.float64)
    results = []
    for k in range(ticks):
        r = f.filter(action, measured, k * SPEC.period_s, state=measured)
        results.append(r)
        if r.command is not None:
            measured = r.command
    return results


# -- the spec ------------------------------------------------------------------------------------


def test_shipped_spec_has_the_table_and_a_box_around_the_task():
    w = SPEC.workspace
    table = next(p for p in w.keep_out if p.name == "table")
    assert table.normal == (0.0, 0.0, 1.0) and table.offset == 0.0 and table.bound == pytest.approx(TABLE_Z)
    # the task's TCP range (x 0.2..0.75, y -0.35..0.45, z 0..0.6) with margins, and the start pose, are inside
    assert np.all(np.array(w.box_min) < [0.2, -0.35, 0.0 + 1e-9]) and np.all(np.array(w.box_max) > [0.75, 0.45, 0.6])
    assert Workspace.from_spec(SPEC).violation(CHAIN.tcp_position(READY_POSE)) == (0.0, "")


def test_spec_kinematics_equal_the_simulated_robot():
    assert SPEC.workspace.kinematics.dh == tuple(DH_PARAMS)
    rng = np.random.default_rng(0)
    for q in [READY_POSE, *rng.uniform(-2.5, 2.5, (20, 7))]:
        np.testing.assert_allclose(CHAIN.tcp_pose(q), tcp_pose(q), atol=1e-12)


def test_rpy_round_trip():
    for rpy in ([0.3, -0.4, 2.0], [-3.0, 1.2, -0.1], [np.pi, 0.0, 0.0]):
        np.testing.assert_allclose(rpy_matrix(*rpy_from_matrix(rpy_matrix(*rpy))), rpy_matrix(*rpy), atol=1e-12)


@pytest.mark.parametrize(
    ("change", "key", "found"),
    [
        (lambda r: r["workspace"]["box"].update(max=[0.85, 0.55, -0.1]), "workspace.box.max", "-0.1"),
        (lambda r: r["workspace"]["box"].update(min=[0.1, 0.2]), "workspace.box.min", "[0.1, 0.2]"),
        (lambda r: r["workspace"]["keep_out"]["table"].update(normal=[0, 0, 0]), "workspace.keep_out.table.normal",
         "[0.0, 0.0, 0.0]"),
        (lambda r: r["workspace"]["keep_out"]["table"].update(clearance=-1), "workspace.keep_out.table.clearance",
         "-1"),
        (lambda r: r["workspace"]["kinematics"].update(joints=["fr3_joint1", "elbow"]),
         "workspace.kinematics.joints[1]", "elbow"),
        (lambda r: r["workspace"]["kinematics"]["dh"].__setitem__(2, [0.0, 0.316]), "workspace.kinematics.dh[2]",
         "[0.0, 0.316]"),
        (lambda r: r["workspace"].pop("kinematics"), "workspace.kinematics", "<missing>"),
        (lambda r: r["workspace"].update(margin=0.1), "workspace.margin", "unknown key"),
    ],
)
def test_workspace_mistakes_name_the_key(change, key, found):
    with pytest.raises(SpecError) as info:
        variant(change)
    assert f"<variant>: {key}:" in str(info.value) and found in str(info.value)


# -- joint commands ------------------------------------------------------------------------------


def test_a_policy_pushing_into_the_table_stops_on_it_and_keeps_commanding(caplog):
    below = np.append(joints_reaching([0.45, 0.05, -0.08]), GRIPPER)
    assert CHAIN.tcp_position(below)[2] < -0.05  # the target really is inside the table
    f = SafetyFilter(variant(lambda r: r["safety"].update(require_enable=False)))
    with caplog.at_level(logging.WARNING, logger="hpt_ros.safety"):
        results = track(f, below, HOME, 120)
    assert all(not r.held for r in results)  # clamped, never held
    heights = [CHAIN.tcp_position(r.command)[2] for r in results]
    assert min(heights) >= TABLE_Z - 1e-6
    assert heights[-1] == pytest.approx(TABLE_Z, abs=1e-3)  # it went down to the table
    assert results[-1].limit == "table" and results[-1].clamped
    assert sum("workspace limit" in r.getMessage() and "table" in r.getMessage() for r in caplog.records) == 1


def test_commands_beyond_the_box_stop_at_its_face():
    far = np.append(joints_reaching([0.75, 0.0, 0.3]), GRIPPER)
    assert CHAIN.tcp_position(far)[0] == pytest.approx(0.75, abs=1e-3)
    spec = variant(lambda r: (r["safety"].update(require_enable=False), r["workspace"]["box"].update(
        max=[0.6, 0.55, 0.75])))
    results = track(SafetyFilter(spec), far, HOME, 120)
    xs = [CHAIN.tcp_position(r.command)[0] for r in results]
    assert max(xs) <= 0.6 + 1e-6 and xs[-1] == pytest.approx(0.6, abs=1e-3) and results[-1].limit == "box x max"


def test_inside_commands_pass_untouched():
    inside = np.append(joints_reaching([0.5, 0.1, 0.2]), GRIPPER)
    results = track(SafetyFilter(variant(lambda r: r["safety"].update(require_enable=False))), inside, HOME, 120)
    assert results[-1].command == pytest.approx(inside) and results[-1].limit == "" and not results[-1].clamped


def test_from_outside_the_box_it_may_come_back_but_not_go_further():
    spec = variant(lambda r: (r["safety"].update(require_enable=False), r["workspace"]["box"].update(
        max=[0.85, 0.55, 0.4])))  # the start pose (TCP z 0.487) is now above the box
    further = np.append(joints_reaching([0.3, 0.0, 0.6]), GRIPPER)
    back = np.append(joints_reaching([0.3, 0.0, 0.3]), GRIPPER)
    r = SafetyFilter(spec).filter(further, HOME, 0.0, state=HOME)
    assert r.limit == "box z max" and r.command == pytest.approx(HOME, abs=1e-4)  # stays where it is
    results = track(SafetyFilter(spec), back, HOME, 60)
    assert all(r.limit == "" for r in results) and results[-1].command == pytest.approx(back)


def test_without_a_known_arm_pose_a_target_outside_is_held():
    below = np.append(joints_reaching([0.45, 0.0, -0.08]), GRIPPER)
    f = SafetyFilter(variant(lambda r: r["safety"].update(require_enable=False)))
    r = f.filter(below, None, 0.0)
    assert r.held and r.command is None and r.reason == "workspace: table (no known arm pose to step from)"
    assert [(e.kind, e.reason) for e in f.events] == [("hold", r.reason)]


def test_runtime_passes_the_state_and_reports_the_limit():
    below = np.append(joints_reaching([0.45, 0.05, -0.08]), GRIPPER).astype(np.float32)

    class TablePusher(Engine):
        backend = "fake"
        horizon, action_dim, state_dim, num_views = 8, 8, 8, 2

        def predict(self, images, state):
            return np.repeat(below[None, None, :], 8, axis=1)

    rt = PolicyRuntime(SYNC_SPEC, TablePusher())
    rt.set_enabled(True, 0.0)
    measured = HOME.copy()
    for k in range(120):
        t = k * SPEC.period_s
        for camera in ("wrist_camera", "third_person_camera"):
            rt.cache.update(camera, np.zeros((4, 6, 3), np.uint8), t)
        rt.cache.update("joint_states", measured, t)
        r = rt.tick(t)
        assert not r.held and CHAIN.tcp_position(r.command)[2] >= TABLE_Z - 1e-5
        measured = r.command
    assert r.limit == "table"


def test_runtime_steps_the_first_ee_pose_from_the_measured_joints():
    spec = ee_spec("ee_pose")
    far = (CHAIN.tcp_xyz_rpy(READY_POSE) + [0.2, 0.2, -0.2, 0.0, 0.0, 0.0]).astype(np.float32)

    class FarPose(Engine):
        backend = "fake"
        horizon, action_dim, state_dim, num_views = 8, 6, 8, 2

        def predict(self, images, state):
            return np.repeat(far[None, None, :], 8, axis=1)

    rt = PolicyRuntime(spec, FarPose())
    for camera in ("wrist_camera", "third_person_camera"):
        rt.cache.update(camera, np.zeros((4, 6, 3), np.uint8), 0.0)
    rt.cache.update("joint_states", HOME, 0.0)
    r = rt.tick(0.0)
    one_step = CHAIN.tcp_position(READY_POSE) + [1, 1, -1] * rt.safety.max_step[:3]
    assert r.activated and r.command[:3] == pytest.approx(one_step)


# -- end-effector commands -----------------------------------------------------------------------


def ee_spec(kind: str):
    def change(raw):
        raw["safety"]["require_enable"] = False
        raw["execution"]["async"] = False
        raw["action"] = {"kind": kind, "frame": "fr3_link0",
                         "command": {"topic": "/cartesian/command",
                                     "type": "geometry_msgs/msg/PoseStamped" if kind == "ee_pose"
                                     else "geometry_msgs/msg/TwistStamped"}}
    return variant(change)


def test_ee_pose_into_the_table_is_clamped_onto_it():
    f = SafetyFilter(ee_spec("ee_pose"))
    start = CHAIN.tcp_xyz_rpy(READY_POSE)
    pose = start.copy()
    for k in range(200):
        target = np.array([0.5, 0.1, -0.2, *start[3:]])
        r = f.filter(target, None, k * SPEC.period_s, state=HOME)
        assert r.command[2] >= TABLE_Z - 1e-9
        pose = r.command
    assert pose[:3] == pytest.approx([0.5, 0.1, TABLE_Z]) and r.limit == "table"


def test_first_ee_pose_is_stepped_from_the_measured_pose():
    spec = ee_spec("ee_pose")
    measured_pose = CHAIN.tcp_xyz_rpy(READY_POSE)
    far = measured_pose + [0.3, -0.2, -0.3, 0.5, -0.4, 0.6]
    r = SafetyFilter(spec).filter(far, None, 0.0, state=HOME)
    step = SafetyFilter(spec).max_step
    assert r.activated and r.clamped
    moved = r.command - measured_pose
    moved[3:] = (moved[3:] + np.pi) % (2 * np.pi) - np.pi
    assert moved == pytest.approx(np.sign(far - measured_pose) * step)  # one step toward it on every axis
    # without the measured joints there is no pose to step from: the old behaviour
    unreferenced = SafetyFilter(spec).filter(far, None, 0.0).command
    assert unreferenced[:3] == pytest.approx(far[:3]) and np.cos(unreferenced[3:]) == pytest.approx(np.cos(far[3:]))


def test_ee_twist_toward_the_table_slows_to_reach_it_keeping_the_sideways_part():
    spec = ee_spec("ee_twist")
    low = np.append(joints_reaching([0.45, 0.0, TABLE_Z + 0.01]), GRIPPER)
    z = CHAIN.tcp_position(low)[2]
    f = SafetyFilter(spec)
    twist = np.zeros(6)
    for k in range(40):  # the acceleration limit ramps the twist up first
        r = f.filter([0.05, 0.0, -0.2, 0.0, 0.0, 0.0], None, k * SPEC.period_s, state=low)
        twist = r.command
    assert z + twist[2] * SPEC.period_s == pytest.approx(TABLE_Z, abs=1e-9) and r.limit == "table"
    assert twist[0] == pytest.approx(0.05)
    up = f.filter([0.0, 0.0, 0.2, 0.0, 0.0, 0.0], None, 99.0, state=low)
    assert up.limit == "" and up.command[2] > twist[2]
    held = SafetyFilter(spec).filter(np.zeros(6), None, 0.0)
    assert held.held and held.reason == "workspace: TCP position unknown (no measured arm joints)"
