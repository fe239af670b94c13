"""The feed-dog scene: per-episode layout, deterministic rendering that follows the arm and the bowl, speed."""

from __future__ import annotations

import time

import cv2
import numpy as np
import pytest
import yaml

from hpt_ros.sim.camera import Camera, clip_polygon_near, clip_segment_near, half_plane_polygon
from hpt_ros.sim.kinematics import READY_POSE, TCP_INDEX, forward_kinematics, ik_step
from hpt_ros.sim.scene import BOWL_HEIGHT, REACH_BOX, FeedDogScene

from conftest import ROOT

MOVED = READY_POSE + np.array([0.3, 0.15, 0.0, 0.2, 0.0, -0.1, 0.0])


def _reach(q, target, steps=200):
    q = np.array(q, dtype=float)
    for _ in range(steps):
        q = q + ik_step(q, target, gain=0.5, damping=0.02)
    return q


def test_layout_deterministic_per_seed_and_episode():
    a, b = FeedDogScene(7, 3), FeedDogScene(7, 3)
    np.testing.assert_array_equal(a.target_position, b.target_position)
    np.testing.assert_array_equal(a.treat_position, b.treat_position)
    targets = {tuple(FeedDogScene(7, e).target_position) for e in range(20)}
    assert len(targets) == 20
    assert tuple(FeedDogScene(8, 3).target_position) != tuple(a.target_position)
    with pytest.raises(ValueError):
        FeedDogScene(-1, 0)


def test_bowl_in_reach_and_treat_apart():
    for e in range(50):
        s = FeedDogScene(0, e)
        x, y, z = s.target_position
        assert REACH_BOX["x"][0] <= x <= REACH_BOX["x"][1] and REACH_BOX["y"][0] <= y <= REACH_BOX["y"][1]
        assert z == 0.0
        assert np.linalg.norm(s.treat_position - s.target_position) >= 0.2 - 1e-9


def test_task_image_region_is_honoured():
    task = yaml.safe_load((ROOT / "config" / "tasks" / "feed_dog.yaml").read_text())
    region = task["target_region"]
    cam_k = None
    for e in range(30):
        s = FeedDogScene.from_task(task, seed=1, episode=e)
        cam = s.third_person_camera
        cam_k = cam.intrinsics(640, 480) if cam_k is None else cam_k
        uv = cam.project(cam.to_camera(s.target_position[None]), cam_k)[0] / [640, 480]
        assert region["u"][0] - 1e-9 <= uv[0] <= region["u"][1] + 1e-9
        assert region["v"][0] - 1e-9 <= uv[1] <= region["v"][1] + 1e-9
        x, y, _ = s.target_position
        assert REACH_BOX["x"][0] <= x <= REACH_BOX["x"][1] and REACH_BOX["y"][0] <= y <= REACH_BOX["y"][1]
    with pytest.raises(ValueError):
        FeedDogScene(0, 0, target_region={"a": [0, 1]})


def test_render_shapes_and_determinism():
    s = FeedDogScene(2, 5)
    wrist, third = s.render(READY_POSE, 0.04)
    for img in (wrist, third):
        assert img.shape == (480, 640, 3) and img.dtype == np.uint8 and img.flags.writeable
    w2, t2 = FeedDogScene(2, 5).render(READY_POSE, 0.04)
    np.testing.assert_array_equal(wrist, w2)
    np.testing.assert_array_equal(third, t2)
    small = s.render(READY_POSE, 0.04, width=224, height=224)
    assert small[0].shape == (224, 224, 3) and small[1].shape == (224, 224, 3)
    # the returned images are the caller's: scribbling on them changes nothing later
    third[:] = 0
    np.testing.assert_array_equal(s.render(READY_POSE, 0.04)[1], t2)


def _changed(a, b):
    return float(np.mean(np.any(a != b, axis=2)))


def test_views_follow_the_arm_fingers_and_bowl():
    s = FeedDogScene(2, 5)
    w0, t0 = s.render(READY_POSE, 0.04)
    w1, t1 = s.render(MOVED, 0.04)
    assert _changed(w0, w1) > 0.3  # the hand camera sees a different part of the table
    assert _changed(t0, t1) > 0.01  # the arm moved in the fixed view
    w2, t2 = s.render(READY_POSE, 0.0)
    assert 0 < _changed(w0, w2) < 0.2 and 0 < _changed(t0, t2) < 0.01  # only the fingers moved
    other = next(FeedDogScene(2, e) for e in range(6, 50)
                 if np.linalg.norm(FeedDogScene(2, e).target_position - s.target_position) > 0.15)
    w3, t3 = other.render(READY_POSE, 0.04)
    assert _changed(w0, w3) > 0.005 and _changed(t0, t3) > 0.002


def _red_centroid(img):
    r, g, b = (img[..., i].astype(int) for i in range(3))
    mask = (r > 120) & (g < 90) & (b < 90)
    if mask.sum() < 20:
        return None
    v, u = np.nonzero(mask)
    return np.array([u.mean(), v.mean()])


def test_bowl_drawn_where_it_projects():
    s = FeedDogScene(4, 1)
    rim = s.target_position + [0, 0, BOWL_HEIGHT / 2]
    x, y, _ = s.target_position
    near = _reach(READY_POSE, (x - 0.05, y + 0.03, 0.3))  # the whole bowl in the hand camera's view
    for cam, img in ((s.third_person_camera, s.render_third_person(READY_POSE, 0.04)),
                     (s.wrist_camera(near), s.render_wrist(near, 0.04))):
        uv = cam.project(cam.to_camera(rim[None]), cam.intrinsics(640, 480))[0]
        centroid = _red_centroid(img)
        assert centroid is not None
        assert np.linalg.norm(centroid - uv) < 15, (centroid, uv)


def test_wrist_bowl_moves_in_image_as_the_hand_moves():
    s = FeedDogScene(4, 1)
    x, y, _ = s.target_position
    above = _reach(READY_POSE, (x, y, 0.25))
    c_above = _red_centroid(s.render_wrist(above, 0.04))
    shifted = _reach(above, (x + 0.06, y, 0.25))
    c_shift = _red_centroid(s.render_wrist(shifted, 0.04))
    assert c_above is not None and c_shift is not None
    # hand forward (+x) -> the bowl slides toward the image bottom (image up is the tool x axis)
    assert c_shift[1] - c_above[1] > 20
    assert abs(c_shift[0] - c_above[0]) < 10


def test_wrist_camera_looking_at_the_horizon_and_below_the_table():
    s = FeedDogScene(0, 0)
    # level camera 0.5 m up looking along +x: upper half wall, lower half table/floor
    level = Camera.looking_at((0.0, 0.0, 0.5), (1.0, 0.0, 0.5), 70.0)
    img = np.empty((480, 640, 3), np.uint8)
    s._draw_table(img, level, level.intrinsics(640, 480))
    assert (img[:235] == (196, 206, 220)).all()
    assert not (img[245:] == (196, 206, 220)).all(axis=2).any()
    below = Camera.looking_at((0.5, 0.0, -0.1), (0.5, 0.0, -1.0), 70.0)
    s._draw_table(img, below, below.intrinsics(640, 480))
    assert (img == img[0, 0]).all()


def test_success_only_just_over_the_bowl():
    s = FeedDogScene(3, 2)
    x, y, _ = s.target_position
    assert not s.success(READY_POSE)
    q_low = _reach(READY_POSE, (x, y, 0.08))
    assert s.success(q_low)
    assert not s.success(_reach(q_low, (x, y, 0.15)))  # too high
    assert not s.success(_reach(q_low, (x + 0.07, y, 0.08)))  # beside the bowl
    assert not s.success(_reach(q_low, (x, y, 0.03)))  # in it, below the rim
    assert forward_kinematics(q_low)[TCP_INDEX][2, 3] == pytest.approx(0.08, abs=1e-3)


def test_clipping_helpers():
    square = np.array([[-1, -1, 1.0], [1, -1, 1.0], [1, 1, -1.0], [-1, 1, -1.0]])
    clipped = clip_polygon_near(square, 0.5)
    assert (clipped[:, 2] >= 0.5 - 1e-12).all() and len(clipped) == 4
    assert len(clip_polygon_near(square * [1, 1, -1], 2.0)) == 0
    a, b = clip_segment_near(np.array([0, 0, -1.0]), np.array([0, 0, 1.0]), 0.1)
    assert a[2] == pytest.approx(0.1) and b[2] == 1.0
    assert clip_segment_near(np.array([0, 0, -1.0]), np.array([0, 0, 0.0]), 0.1) is None
    half = half_plane_polygon(np.array([0.0, -1.0, 100.0]), 640, 480)  # v <= 100
    assert half[:, 1].max() == pytest.approx(100.0) and half[:, 1].min() == 0.0


def test_render_time_under_10_ms_on_one_core():
    s = FeedDogScene(0, 0)
    threads = cv2.getNumThreads()
    cv2.setNumThreads(1)
    try:
        s.render(READY_POSE, 0.04)  # builds the cached third-person background
        times = []
        for i in range(40):
            q = READY_POSE + 0.01 * i
            t = time.perf_counter()
            s.render(q, 0.02)
            times.append(time.perf_counter() - t)
    finally:
        cv2.setNumThreads(threads)
    median_ms = 1e3 * float(np.median(times))
    print(f"render (wrist + third person, 640x480, one core): median {median_ms:.2f} ms")
    assert median_ms < 10.0
