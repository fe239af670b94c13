"""Training samples from bags: tick times, the observation and action at each tick, chunks, the cache.

A bag with hand-placed timestamps (tiny 8x8 frames whose pixel value names the frame) is
read through ``hpt_ros.data.dataset`` with a stand-in feature extractor that returns each
frame's pixel value as its "features"; every tick's chosen frames, state and action
chunk are then compared with what the rules in the module docstring give by hand.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from conftest import ROOT

from hpt_ros.data import EpisodeWriter, read_episode
from hpt_ros.data.dataset import (
    ActionSource,
    SampleSet,
    action_chunks,
    build_episode,
    iter_ticks,
    select_episodes,
    split_episodes,
)
from hpt_ros.msgs import messages
from hpt_ros.msgs.idl import new_message, serialize
from hpt_ros.spec import parse_spec

SPEC_FILE = ROOT / "config" / "robots" / "franka_fr3.yaml"
ARM = [f"fr3_joint{i}" for i in range(1, 8)]
READY = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
T0 = 1_700_000_000 * 10**9  # bag epoch [ns]
MS = 1_000_000


def make_spec(rate_hz: float = 10.0):
    raw = yaml.safe_load(SPEC_FILE.read_text())
    raw["robot"]["rate_hz"] = rate_hz
    return parse_spec(raw, str(SPEC_FILE))


class FakeExtractor:
    """Frames -> 'features' whose every entry is the frame's first pixel value (its id)."""

    batch_size = 4

    def __init__(self, tag: str = "fake-v1"):
        self.tag = tag
        self.calls = 0

    def describe(self):
        return {"encoder": self.tag}

    def __call__(self, frames):
        self.calls += 1
        frames = np.stack(list(frames))
        return np.broadcast_to(frames[:, 0, 0, 0].astype(np.float32)[:, None, None], (len(frames), 49, 512)).copy()


def _js(i: int) -> np.ndarray:
    return np.append(READY + i * 1e-3, 0.04)


def _cmd(k: int) -> np.ndarray:
    return np.append(READY + 0.1 + k * 0.01, 0.02 + 0.001 * k)


def write_bag(folder: Path, spec, *, gap=(1.0, 1.5), end_s=2.0, wrist_start=0.013, third_start=0.027,
              cmd_start=0.5, success=True):
    """Joint states every 10 ms from 0; wrist frames every 50 ms from ``wrist_start`` (id k), none
    in ``gap``; third-person frames every 50 ms from ``third_start`` (id 100 + k); commands and
    gripper every 100 ms from ``cmd_start`` (values ``_cmd(k)``)."""
    topics = {s.topic: s.type for s in spec.sensors}
    topics[spec.action.command.topic] = spec.action.command.type
    topics[spec.action.gripper.topic] = spec.action.gripper.type
    names = list(spec.action.joints) + ["fr3_finger_joint2"]
    events = []
    for i in range(int(end_s / 0.01) + 1):
        events.append((i * 10 * MS, "js", i))
    for k in range(int((end_s - wrist_start) / 0.05) + 1):
        t = wrist_start + k * 0.05
        if not gap[0] <= t < gap[1]:
            events.append((round(t * 1e9), "wrist", k))
    for k in range(int((end_s - third_start) / 0.05) + 1):
        events.append((round((third_start + k * 0.05) * 1e9), "third", k))
    for k in range(int((end_s - cmd_start) / 0.1 + 1e-9) + 1):
        events.append((round((cmd_start + k * 0.1) * 1e9), "cmd", k))
    events.sort(key=lambda e: (e[0], e[1]))
    writer = EpisodeWriter(folder, topics, {"task": "test", "spec_hash": spec.spec_hash}, min_free_bytes=0,
                           flush_interval_s=None, fsync=False)
    wrist, third = spec.image_sensors
    for t, kind, k in events:
        stamp = T0 + t
        if kind == "js":
            q = _js(k)
            msg = messages.fill_joint_state(new_message("sensor_msgs/msg/JointState"), names, np.append(q, q[-1]),
                                            stamp_s=stamp / 1e9)
            writer.write(spec.state_sensors[0].topic, stamp, serialize(msg))
        elif kind in ("wrist", "third"):
            value = k % 100 if kind == "wrist" else 100 + k % 100
            img = np.full((8, 8, 3), value, np.uint8)
            msg = messages.numpy_to_image(new_message("sensor_msgs/msg/Image"), img, "rgb8", stamp_s=stamp / 1e9)
            writer.write((wrist if kind == "wrist" else third).topic, stamp, serialize(msg))
        else:
            a = _cmd(k)
            msg = messages.fill_joint_trajectory(new_message(spec.action.command.type), spec.action.arm_joints, a[:7],
                                                 stamp / 1e9, 0.1)
            writer.write(spec.action.command.topic, stamp, serialize(msg))
            g = messages.fill_float64_multi_array(new_message(spec.action.gripper.type), [a[7]])
            writer.write(spec.action.gripper.topic, stamp, serialize(g))
    writer.close(success=success)
    return read_episode(folder)


@pytest.fixture(scope="module")
def spec():
    return make_spec(10.0)


@pytest.fixture(scope="module")
def bag(tmp_path_factory, spec):
    return write_bag(tmp_path_factory.mktemp("bags") / "episode_0000", spec)


def expected_ticks(end_s=2.0, t0_s=0.027, rate=10.0):
    k = np.arange(0, int((end_s - t0_s) * rate + 1e-9) + 1)
    return t0_s + k / rate


def test_ticks_start_when_every_required_sensor_has_a_value_and_follow_the_rate(spec, bag):
    ticks = list(iter_ticks(bag.path, spec))
    times = np.array([t.time_ns - T0 for t in ticks]) / 1e9
    np.testing.assert_allclose(times, expected_ticks(), atol=1e-9)
    # ticks every 1/rate exactly (integer ns, no drift), from the first instant every sensor has spoken
    assert ticks[0].time_ns == T0 + 27_000_000
    assert set(np.diff([t.time_ns for t in ticks]).tolist()) == {100_000_000}


def test_each_tick_sees_the_latest_message_at_or_before_it(spec, bag):
    for tick in iter_ticks(bag.path, spec):
        t = (tick.time_ns - T0) / 1e9
        js = int(np.floor(t / 0.01 + 1e-9))
        if tick.observation is None:
            continue
        np.testing.assert_allclose(tick.observation.state, _js(js).astype(np.float32), atol=1e-7)
        wrist_id = int(np.floor((t - 0.013) / 0.05 + 1e-9))
        if 1.0 <= 0.013 + wrist_id * 0.05 < 1.5:  # no wrist frames in the gap: the last one before it
            wrist_id = 19
        third_id = int(np.floor((t - 0.027) / 0.05 + 1e-9))
        assert tick.observation.images[0][0, 0, 0] == wrist_id % 100
        assert tick.observation.images[1][0, 0, 0] == 100 + third_id % 100


def test_ticks_the_live_node_would_hold_are_not_samples(spec, bag):
    ticks = list(iter_ticks(bag.path, spec))
    wrist_max_age = spec.image_sensors[0].max_age
    for tick in ticks:
        t = (tick.time_ns - T0) / 1e9
        last_wrist = 0.013 + np.floor((min(t, 0.963) - 0.013) / 0.05 + 1e-9) * 0.05 if t < 1.5 else None
        stale = last_wrist is not None and t - last_wrist > wrist_max_age + 1e-9
        assert (tick.observation is None) == stale, t
        if stale:
            assert tick.skip_reason.startswith("StaleSensorError")
    assert sum(t.observation is None for t in ticks) >= 3


def test_actions_are_the_latest_command_then_chunks_repeat_the_last(spec, bag):
    data = build_episode(bag, spec, FakeExtractor())
    times = (data.times_ns - T0) / 1e9
    for t, action, state in zip(times, data.actions, data.states):
        if t < 0.5:  # before the first command: the measured position (an arm nobody commands holds still)
            js = int(np.floor(t / 0.01 + 1e-9))
            np.testing.assert_allclose(action, _js(js).astype(np.float32), atol=1e-7)
        else:
            k = int(np.floor((t - 0.5) / 0.1 + 1e-9))
            np.testing.assert_allclose(action, _cmd(k).astype(np.float32), atol=1e-7)
    samples = SampleSet([data], 8)
    valid = np.flatnonzero(data.valid)
    assert len(samples) == len(valid)
    n = len(data.actions)
    for row, tick in enumerate(valid):
        for i in range(8):
            np.testing.assert_array_equal(samples.chunks[row, i], data.actions[min(tick + i, n - 1)])
    # the last sample's chunk is its own action repeated
    assert valid[-1] == n - 1
    np.testing.assert_array_equal(samples.chunks[-1], np.repeat(data.actions[-1:], 8, axis=0))


def test_features_follow_the_frames_and_each_distinct_frame_is_encoded_once(spec, bag):
    extractor = FakeExtractor()
    data = build_episode(bag, spec, extractor)
    samples = SampleSet([data], 8)
    feats, state, chunk = samples.batch(np.arange(len(samples)))
    assert tuple(feats.shape[1:]) == (2, 49, 512) and feats.dtype.is_floating_point
    valid_ticks = [t for t in iter_ticks(bag.path, spec) if t.observation is not None]
    for row, tick in enumerate(valid_ticks):
        assert feats[row, 0, 0, 0] == tick.observation.images[0][0, 0, 0]
        assert feats[row, 1, 0, 0] == tick.observation.images[1][0, 0, 0]
        np.testing.assert_array_equal(state[row].numpy(), tick.observation.state)
    keys = {k for t in valid_ticks for k in t.image_keys}
    assert data.features.shape[0] == len(keys) == data.stats["frames_encoded"]


def test_feature_cache_hits_and_misses(spec, tmp_path):
    info = write_bag(tmp_path / "eps" / "episode_0000", spec)
    cache = tmp_path / "cache"
    first = build_episode(info, spec, FakeExtractor(), cache_dir=cache)
    assert not first.cached
    again_extractor = FakeExtractor()
    again = build_episode(info, spec, again_extractor, cache_dir=cache)
    assert again.cached and again_extractor.calls == 0
    for name in ("times_ns", "valid", "actions", "frame_index"):
        np.testing.assert_array_equal(getattr(first, name), getattr(again, name))
    np.testing.assert_array_equal(np.asarray(first.features), np.asarray(again.features))
    # another encoder, another rate, another feature dtype: recomputed
    assert not build_episode(info, spec, FakeExtractor("other-weights"), cache_dir=cache).cached
    assert not build_episode(info, spec, FakeExtractor(), cache_dir=cache, rate_hz=5.0).cached
    assert not build_episode(info, spec, FakeExtractor(), cache_dir=cache, feature_dtype="float32").cached
    assert build_episode(info, spec, FakeExtractor(), cache_dir=cache).cached
    # the bag rewritten (same name, other content): recomputed
    import shutil

    shutil.rmtree(info.path)
    info = write_bag(tmp_path / "eps" / "episode_0000", spec, cmd_start=0.6)
    assert not build_episode(info, spec, FakeExtractor(), cache_dir=cache).cached


def test_feature_extractor_matches_the_inference_graph():
    import torch

    from hpt_ros.data.features import FeatureExtractor
    from hpt_ros.engine.factory import build_policy_for_spec
    from hpt_ros.engine.graph import PolicyGraph
    from hpt_ros.spec import load_spec

    torch.manual_seed(0)
    policy = build_policy_for_spec(load_spec("franka_fr3"), size="tiny", random_vision=True)
    graph = PolicyGraph(policy, fold_bn=True)
    extractor = FeatureExtractor(policy.encoder, batch_size=3)
    rng = np.random.default_rng(0)
    for shape in ((120, 160), (224, 224)):
        frames = rng.integers(0, 256, (4, 2) + shape + (3,), dtype=np.uint8)
        with torch.no_grad():
            want = graph.encode(torch.from_numpy(frames)).numpy()
        got = extractor(frames.reshape((8,) + shape + (3,))).reshape(want.shape)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert len(extractor.weights_sha256) == 64


def test_split_is_by_episode_deterministic_and_stable():
    names = [f"episode_{i:04d}" for i in range(20)]
    train, val = split_episodes(names, 0.1, seed=0)
    assert len(val) == 2 and not set(train) & set(val) and sorted(train + val) == names
    assert split_episodes(list(reversed(names)), 0.1, seed=0) == (train, val)
    assert split_episodes(names, 0.1, seed=1) != (train, val)
    # adding an episode moves at most one other
    _, val21 = split_episodes(names + ["episode_0020"], 0.1, seed=0)
    assert len(set(val) - set(val21)) <= 1
    assert split_episodes(["a"], 0.5) == (["a"], [])
    assert split_episodes(["a", "b"], 0.0) == (["a", "b"], [])
    assert len(split_episodes(["a", "b", "c"], 0.01)[1]) == 1


def test_episode_selection(spec, tmp_path):
    root = tmp_path / "demos"
    write_bag(root / "episode_0000", spec, end_s=0.5, success=True)
    write_bag(root / "episode_0001", spec, end_s=0.5, success=False)
    info = write_bag(root / "episode_0002", spec, end_s=0.5, success=True)
    (info.path / "metadata.yaml").unlink()  # as after a killed recorder: needs repair
    used, skipped = select_episodes(root)
    assert [i.path.name for i in used] == ["episode_0000", "episode_0001"]
    assert [(i.path.name, "repair" in r) for i, r in skipped] == [("episode_0002", True)]
    used, skipped = select_episodes(root, only_success=True)
    assert [i.path.name for i in used] == ["episode_0000"]
    used, _ = select_episodes(root / "episode_0001")  # a single episode folder
    assert [i.path.name for i in used] == ["episode_0001"]
    with pytest.raises(FileNotFoundError):
        select_episodes(tmp_path / "nothing")


def test_other_action_sources(spec, tmp_path):
    """A leader arm's JointState as the action topic; a missing action topic is a clear error."""
    info = write_bag(tmp_path / "episode_0000", spec, end_s=0.6)
    leader = ActionSource.from_spec(spec, topic=spec.state_sensors[0].topic, msg_type="sensor_msgs/msg/JointState",
                                    gripper_topic="")
    data = build_episode(info, spec, FakeExtractor(), action_source=leader)
    np.testing.assert_allclose(data.actions, data.states, atol=1e-7)  # the "leader" is the arm itself here
    from hpt_ros.data.dataset import DatasetError

    missing = ActionSource.from_spec(spec, topic="/leader/joint_states", msg_type="sensor_msgs/msg/JointState")
    with pytest.raises(DatasetError, match="/leader/joint_states"):
        build_episode(info, spec, FakeExtractor(), action_source=missing)


def test_action_chunks_pad_with_the_last_action():
    actions = np.arange(5, dtype=np.float32)[:, None] * [1.0, 10.0]
    chunks = action_chunks(actions, np.array([0, 3, 4]), 3)
    np.testing.assert_array_equal(chunks[:, :, 0], [[0, 1, 2], [3, 4, 4], [4, 4, 4]])


def test_a_full_disk_stops_loading_instead_of_skipping_episodes(spec, tmp_path, monkeypatch):
    """A cache that cannot be written is the machine's fault: training on the episodes that
    happened to fit would lose data silently, so loading stops and names the cache."""
    import errno

    from hpt_ros.data import dataset

    infos = [write_bag(tmp_path / "eps" / f"episode_000{i}", spec) for i in range(2)]
    loaded, failed = dataset.load_episodes(infos, spec, FakeExtractor(), cache_dir=tmp_path / "cache", progress=False)
    assert len(loaded) == 2 and not failed

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dataset, "save_cached", full)
    with pytest.raises(OSError, match="No space left on device while reading .*episode_0000 or writing the "
                                      "feature cache .*other-cache"):
        dataset.load_episodes(infos, spec, FakeExtractor(), cache_dir=tmp_path / "other-cache", progress=False)

    # an error of the episode itself is still skipped, with its reason
    def broken(*args, **kwargs):
        raise OSError(errno.EIO, "bad bag")

    monkeypatch.setattr(dataset, "save_cached", broken)
    loaded, failed = dataset.load_episodes(infos, spec, FakeExtractor(), cache_dir=tmp_path / "third", progress=False)
    assert loaded == [] and [f[1] for f in failed] == ["[Errno 5] bad bag"] * 2
