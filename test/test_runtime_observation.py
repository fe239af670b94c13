"""Observation cache: latest value only, ages on the caller's clock, the inclusive max_age
boundary, missing / stale / invalid sensors, optional sensors, view stacking and resizing."""

from __future__ import annotations

import logging
import math
import threading

import numpy as np
import pytest
from conftest import require_module

from hpt_ros.runtime import (
    InvalidSensorError,
    MissingSensorError,
    ObservationCache,
    SensorDataError,
    StaleSensorError,
    resize_bilinear,
)
from hpt_ros.spec import parse_spec

from test_runtime_helpers import tiny_data, tiny_spec


def frame(value: int, h: int = 4, w: int = 6) -> np.ndarray:
    return np.full((h, w, 3), value, dtype=np.uint8)


def fill(cache: ObservationCache, t: float, state=(0.25, 0.5)) -> None:
    cache.update("cam0", frame(10), t)
    cache.update("cam1", frame(20), t)
    cache.update("joints", np.array(state), t)


def test_build_orders_views_and_joints():
    cache = ObservationCache(tiny_spec())
    cache.update("cam1", frame(20), 0.0)  # arrival order does not matter
    cache.update("cam0", frame(10), 0.0)
    cache.update("joints", [0.25, 0.5], 0.0)
    obs = cache.build(0.0625)
    assert obs.images.shape == (2, 4, 6, 3) and obs.images.dtype == np.uint8
    assert obs.images[0, 0, 0, 0] == 10 and obs.images[1, 0, 0, 0] == 20
    assert obs.state.dtype == np.float32 and obs.state.tolist() == [0.25, 0.5]
    assert obs.stamp == 0.0625
    assert obs.ages == {"cam0": 0.0625, "cam1": 0.0625, "joints": 0.0625}
    assert obs.filled == ()


def test_latest_value_replaces_older():
    cache = ObservationCache(tiny_spec())
    fill(cache, 0.0)
    cache.update("cam0", frame(99), 0.125)
    obs = cache.build(0.125)
    assert obs.images[0, 0, 0, 0] == 99 and obs.ages["cam0"] == 0.0 and obs.ages["cam1"] == 0.125
    img, t = cache.latest("cam0")
    assert img[0, 0, 0] == 99 and t == 0.125


def test_missing_sensor():
    cache = ObservationCache(tiny_spec())
    with pytest.raises(MissingSensorError) as info:
        cache.build(1.0)
    assert info.value.sensor == "cam0" and info.value.topic == "/cam0" and info.value.reason == "missing cam0"
    cache.update("cam0", frame(1), 1.0)
    cache.update("joints", [0.0, 0.0], 1.0)
    with pytest.raises(MissingSensorError, match="cam1"):
        cache.build(1.0)
    assert cache.ages(1.0) == {"cam0": 0.0, "cam1": math.inf, "joints": 0.0}


def test_max_age_boundary_is_inclusive():
    """cam max_age 0.25 s: received at 1.0, still fresh at exactly 1.25, stale just after."""
    cache = ObservationCache(tiny_spec())
    fill(cache, 1.0)
    cache.update("joints", [0.0, 0.0], 1.25)
    obs = cache.build(1.25)
    assert obs.ages["cam0"] == 0.25
    later = float(np.nextafter(1.25, 2.0))
    with pytest.raises(StaleSensorError) as info:
        cache.build(later)
    err = info.value
    assert (err.sensor, err.topic, err.max_age, err.reason) == ("cam0", "/cam0", 0.25, "stale cam0")
    assert err.age > 0.25 and "0.250 s ago" in str(err)


def test_stale_joint_state_with_its_own_max_age():
    cache = ObservationCache(tiny_spec())
    fill(cache, 0.0)
    cache.update("cam0", frame(1), 0.25)
    cache.update("cam1", frame(1), 0.25)
    with pytest.raises(StaleSensorError) as info:
        cache.build(0.25)  # joints 0.25 s old, max_age 0.125
    assert info.value.sensor == "joints" and info.value.age == 0.25


def test_receive_time_after_now():
    """A message newer than ``now`` (callback raced the timer) is fresh with a negative age;
    one more than max_age in the future means the clock jumped back: stale."""
    cache = ObservationCache(tiny_spec())
    fill(cache, 2.0)
    assert cache.build(1.875).ages == {"cam0": -0.125, "cam1": -0.125, "joints": -0.125}
    with pytest.raises(StaleSensorError, match="in the future") as info:
        cache.build(1.5)
    assert info.value.sensor == "cam0" and info.value.age == -0.5


def test_non_finite_joint_is_invalid():
    cache = ObservationCache(tiny_spec())
    fill(cache, 0.0, state=(0.1, float("nan")))
    with pytest.raises(InvalidSensorError) as info:
        cache.build(0.0)
    assert info.value.reason == "invalid joints" and "position for b" in str(info.value)


def test_update_rejects_unusable_arrays():
    cache = ObservationCache(tiny_spec())
    with pytest.raises(SensorDataError, match="unknown sensor 'cam9'"):
        cache.update("cam9", frame(0), 0.0)
    with pytest.raises(SensorDataError, match="uint8"):
        cache.update("cam0", frame(0).astype(np.float32), 0.0)
    with pytest.raises(SensorDataError, match=r"\[H, W, 3\]"):
        cache.update("cam0", np.zeros((4, 6), np.uint8), 0.0)
    with pytest.raises(SensorDataError, match="expected 2 values"):
        cache.update("joints", [0.0, 0.0, 0.0], 0.0)
    assert cache.latest("cam0") is None


def test_optional_sensor_filled_when_missing_and_used_when_stale():
    data = tiny_data()
    data["sensors"]["cam1"]["required"] = False
    cache = ObservationCache(parse_spec(data, "tiny.yaml"))
    cache.update("cam0", frame(10), 0.0)
    cache.update("joints", [0.0, 0.0], 0.0)
    obs = cache.build(0.0)
    assert obs.filled == ("cam1",) and obs.images[1].max() == 0 and obs.images.shape == (2, 4, 6, 3)
    cache.update("cam1", frame(20), 0.0)
    cache.update("cam0", frame(10), 5.0)
    cache.update("joints", [0.0, 0.0], 5.0)
    obs = cache.build(5.0)  # cam1 is 5 s old but optional
    assert obs.filled == () and obs.images[1, 0, 0, 0] == 20 and obs.ages["cam1"] == 5.0


def test_views_of_different_sizes_are_resized_to_encoder_size(caplog):
    cache = ObservationCache(tiny_spec())
    rng = np.random.default_rng(0)
    cam0 = rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
    cam1 = rng.integers(0, 256, (72, 128, 3), dtype=np.uint8)
    cache.update("cam0", cam0, 0.0)
    cache.update("cam1", cam1, 0.0)
    cache.update("joints", [0.0, 0.0], 0.0)
    with caplog.at_level(logging.WARNING, logger="hpt_ros.runtime"):
        obs = cache.build(0.0)
        cache.build(0.0)
    assert obs.images.shape == (2, 224, 224, 3)
    np.testing.assert_array_equal(obs.images[0], resize_bilinear(cam0, 224, 224))
    notes = [r.getMessage() for r in caplog.records if "differ in size" in r.getMessage()]
    assert len(notes) == 1 and "cam0 48x64" in notes[0] and "cam1 72x128" in notes[0]


def test_same_size_views_are_not_resized():
    cache = ObservationCache(tiny_spec())
    cam0 = np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)
    cache.update("cam0", cam0, 0.0)
    cache.update("cam1", cam0[::-1].copy(), 0.0)
    cache.update("joints", [0.0, 0.0], 0.0)
    obs = cache.build(0.0)
    np.testing.assert_array_equal(obs.images[0], cam0)
    assert resize_bilinear(cam0, 5, 7) is cam0


def test_resize_matches_torch_bilinear():
    torch = require_module("torch")
    rng = np.random.default_rng(1)
    for h, w in ((480, 640), (100, 300), (150, 90)):
        img = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
        ours = resize_bilinear(img, 224, 224).astype(np.float32)
        ref = torch.nn.functional.interpolate(
            torch.from_numpy(img).permute(2, 0, 1)[None].float(), size=(224, 224), mode="bilinear",
            align_corners=False, antialias=False,
        )[0].permute(1, 2, 0).numpy()  # fmt: skip
        assert np.abs(ours - ref).max() <= 0.51  # rounding to uint8 (+ float32 summation order)
        assert np.abs(ours - ref).mean() < 0.26


def test_clear_forgets_everything():
    cache = ObservationCache(tiny_spec())
    fill(cache, 0.0)
    cache.clear()
    with pytest.raises(MissingSensorError):
        cache.build(0.0)


def test_concurrent_updates_and_builds():
    """Builds run while another thread replaces values: every build succeeds and sees whole values.

    The writer starts only after the first build and the reader keeps building until the writer
    is done, so builds and updates overlap by construction (not by timing).
    """
    data = tiny_data()
    for sensor in data["sensors"].values():
        sensor["max_age"] = 1e6  # the writer's stamps run ahead of the build time: ages are not the point here
    cache = ObservationCache(parse_spec(data, "tiny.yaml"))
    fill(cache, 0.0, state=(0.0, 0.0))
    first_build_done = threading.Event()
    writer_done = threading.Event()
    errors: list[BaseException] = []
    updates = 2000

    def writer() -> None:
        try:
            first_build_done.wait(30)
            for k in range(1, updates + 1):
                cache.update("cam0", frame(k % 256), k * 0.001)
                cache.update("joints", [k, -k], k * 0.001)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)
        finally:
            writer_done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    seen: list[float] = []
    builds = 0
    try:
        while True:
            finished = writer_done.is_set()
            obs = cache.build(0.0)
            builds += 1
            first_build_done.set()
            assert obs.images.shape == (2, 4, 6, 3) and obs.state.shape == (2,)
            assert obs.state[1] == -obs.state[0], "a joint value torn between two updates"
            seen.append(float(obs.state[0]))
            if finished:
                break
    finally:
        first_build_done.set()
        thread.join()
    assert not errors
    assert seen == sorted(seen), "a build saw an older value after a newer one"
    assert seen[0] == 0.0 and seen[-1] == updates and builds >= 2
