"""FR3 kinematics: FK at known poses, cross-checked three ways; Jacobian; the IK step converges."""

from __future__ import annotations

import math

import numpy as np
import pytest

from hpt_ros.sim.kinematics import (
    DH_PARAMS,
    FLANGE_INDEX,
    HAND_TCP_OFFSET,
    READY_POSE,
    TCP_INDEX,
    forward_kinematics,
    ik_step,
    jacobian,
    tcp_position,
)

RNG = np.random.default_rng(1234)
RANDOM_QS = [RNG.uniform(-2.5, 2.5, 7) for _ in range(20)]


# -- an independent chain: elementary matrices multiplied one by one ------------------
def _rot_x(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[1, 0, 0, 0], [0, c, -s, 0], [0, s, c, 0], [0, 0, 0, 1.0]])


def _rot_z(a):
    c, s = math.cos(a), math.sin(a)
    return np.array([[c, -s, 0, 0], [s, c, 0, 0], [0, 0, 1, 0], [0, 0, 0, 1.0]])


def _trans(x, y, z):
    t = np.eye(4)
    t[:3, 3] = (x, y, z)
    return t


def _reference_chain(q):
    """Franka's DH table typed in again, composed from elementary transforms."""
    table = [(0, 0.333, 0), (0, 0, -math.pi / 2), (0, 0.316, math.pi / 2), (0.0825, 0, math.pi / 2),
             (-0.0825, 0.384, -math.pi / 2), (0, 0, math.pi / 2), (0.088, 0, math.pi / 2), (0, 0.107, 0)]
    t = np.eye(4)
    out = [t]
    for i, (a, d, alpha) in enumerate(table):
        theta = q[i] if i < 7 else 0.0
        t = t @ _rot_x(alpha) @ _trans(a, 0, 0) @ _rot_z(theta) @ _trans(0, 0, d)
        out.append(t)
    out.append(t @ _rot_z(-math.pi / 4) @ _trans(0, 0, 0.1034))
    return out


def _planar(q2, q4, q6):
    """Closed form for q1 = q3 = q5 = 0, where the arm lies in the x-z plane.

    phi is each link's pitch from vertical (positive leans toward +x); u is along the
    link, p across it. Joint 4's axis is opposite to joint 2's, joint 6's too, and at
    q6 = 0 the flange points down (hence + pi).
    """
    u = lambda phi: np.array([math.sin(phi), 0.0, math.cos(phi)])  # noqa: E731
    p = lambda phi: np.array([math.cos(phi), 0.0, -math.sin(phi)])  # noqa: E731
    phi2, phi4 = q2, q2 - q4
    phi6 = phi4 - q6 + math.pi
    elbow = np.array([0, 0, 0.333]) + 0.316 * u(phi2) + 0.0825 * p(phi2)
    wrist = elbow - 0.0825 * p(phi4) + 0.384 * u(phi4)
    j7 = wrist - 0.088 * p(phi6)
    flange = j7 + 0.107 * u(phi6)
    tcp = flange + 0.1034 * u(phi6)
    return elbow, wrist, flange, tcp


def test_zero_pose_hand_computed():
    frames = forward_kinematics(np.zeros(7))
    assert len(frames) == 10
    # straight up: 0.333 + 0.316 + 0.384 = 1.033 at the wrist; the flange points down, 0.107 lower
    np.testing.assert_allclose(frames[FLANGE_INDEX][:3, 3], [0.088, 0.0, 1.033 - 0.107], atol=1e-12)
    np.testing.assert_allclose(frames[TCP_INDEX][:3, 3], [0.088, 0.0, 1.033 - 0.107 - 0.1034], atol=1e-12)
    np.testing.assert_allclose(frames[TCP_INDEX][:3, 2], [0, 0, -1], atol=1e-12)


def test_ready_pose_matches_franka():
    frames = forward_kinematics(READY_POSE)
    flange, tcp = frames[FLANGE_INDEX][:3, 3], frames[TCP_INDEX][:3, 3]
    # our figures
    np.testing.assert_allclose(flange, [0.30689, 0.0, 0.59028], atol=1e-5)
    np.testing.assert_allclose(tcp, [0.30689, 0.0, 0.48688], atol=1e-5)
    # Franka's published ready-pose TCP (~0.307, 0, 0.487) and a tool pointing straight down
    np.testing.assert_allclose(tcp, [0.307, 0.0, 0.487], atol=2e-3)
    np.testing.assert_allclose(frames[TCP_INDEX][:3, 2], [0, 0, -1], atol=1e-12)
    # with q7 = pi/4 the hand's -pi/4 cancels: fingers open along world y
    np.testing.assert_allclose(frames[TCP_INDEX][:3, :3], np.diag([1.0, -1.0, -1.0]), atol=1e-12)
    np.testing.assert_allclose(tcp_position(READY_POSE), tcp)


@pytest.mark.parametrize("q", RANDOM_QS[:8])
def test_matches_independent_chain(q):
    for ours, ref in zip(forward_kinematics(q), _reference_chain(q), strict=True):
        np.testing.assert_allclose(ours, ref, atol=1e-12)


def test_matches_planar_closed_form():
    for q2, q4, q6 in RNG.uniform([-1.7, -3.0, 0.6], [1.7, -0.2, 4.5], (20, 3)):
        q = np.array([0.0, q2, 0.0, q4, 0.0, q6, RNG.uniform(-3, 3)])
        frames = forward_kinematics(q)
        elbow, wrist, flange, tcp = _planar(q2, q4, q6)
        np.testing.assert_allclose(frames[4][:3, 3], elbow, atol=1e-12)
        np.testing.assert_allclose(frames[5][:3, 3], wrist, atol=1e-12)
        np.testing.assert_allclose(frames[FLANGE_INDEX][:3, 3], flange, atol=1e-12)
        np.testing.assert_allclose(frames[TCP_INDEX][:3, 3], tcp, atol=1e-12)


@pytest.mark.parametrize("q", RANDOM_QS)
def test_link_lengths_and_rotations_preserved(q):
    frames = forward_kinematics(q)
    for i, (a, d, _) in enumerate(DH_PARAMS):
        dist = np.linalg.norm(frames[i + 1][:3, 3] - frames[i][:3, 3])
        assert dist == pytest.approx(math.hypot(a, d), abs=1e-12)
    assert np.linalg.norm(frames[TCP_INDEX][:3, 3] - frames[FLANGE_INDEX][:3, 3]) == pytest.approx(HAND_TCP_OFFSET)
    for f in frames:
        np.testing.assert_allclose(f[:3, :3] @ f[:3, :3].T, np.eye(3), atol=1e-12)
        assert np.linalg.det(f[:3, :3]) == pytest.approx(1.0)
        np.testing.assert_array_equal(f[3], [0, 0, 0, 1])


def test_extra_entries_ignored_and_short_rejected():
    np.testing.assert_array_equal(tcp_position(np.append(READY_POSE, 0.04)), tcp_position(READY_POSE))
    with pytest.raises(ValueError):
        forward_kinematics(np.zeros(6))


@pytest.mark.parametrize("q", RANDOM_QS[:5] + [READY_POSE])
def test_jacobian_matches_finite_differences(q):
    jac = jacobian(q)
    eps = 1e-6
    base = forward_kinematics(q)[TCP_INDEX]
    for i in range(7):
        dq = np.zeros(7)
        dq[i] = eps
        moved = forward_kinematics(q + dq)[TCP_INDEX]
        np.testing.assert_allclose((moved[:3, 3] - base[:3, 3]) / eps, jac[:3, i], atol=1e-5)
        # angular velocity: skew part of dR R^T
        w = (moved[:3, :3] - base[:3, :3]) / eps @ base[:3, :3].T
        np.testing.assert_allclose([w[2, 1], w[0, 2], w[1, 0]], jac[3:, i], atol=1e-5)


@pytest.mark.parametrize("target", [(0.5, 0.2, 0.12), (0.4, -0.25, 0.2), (0.6, 0.0, 0.08)])
def test_ik_steps_converge_with_tool_down(target):
    q = READY_POSE.copy()
    for _ in range(200):
        q = q + ik_step(q, target, gain=0.5, damping=0.02)
    frames = forward_kinematics(q)
    assert np.linalg.norm(frames[TCP_INDEX][:3, 3] - target) < 1e-3
    assert frames[TCP_INDEX][2, 2] < -0.999  # tool z still points down


def test_ik_step_is_zero_at_target():
    dq = ik_step(READY_POSE, tcp_position(READY_POSE))
    np.testing.assert_allclose(dq, 0.0, atol=1e-12)
