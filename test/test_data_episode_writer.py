"""EpisodeWriter: one rosbag2 (mcap) bag per episode, read back by rosbags and by mcap."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import ROOT, without_root_override
from mcap.reader import make_reader
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from hpt_ros.data import (
    BagTopicError,
    BagWriteError,
    EpisodeExistsError,
    EpisodeWriter,
    InsufficientSpaceError,
    TopicInfo,
    estimate_episode_bytes,
    open_bag,
    read_episode_yaml,
)

TS = get_typestore(Stores.ROS2_HUMBLE)
IMAGE = "sensor_msgs/msg/Image"
JOINTS = "sensor_msgs/msg/JointState"
TOPICS = {"/wrist/image_raw": IMAGE, "/joint_states": "sensor_msgs/JointState"}
META = {"task": "feed_dog", "episode_index": 3, "operator": "ana", "spec_hash": "abc123", "notes": ""}


def _header(stamp_ns: int, frame: str = "base"):
    time_ = TS.types["builtin_interfaces/msg/Time"](sec=stamp_ns // 10**9, nanosec=stamp_ns % 10**9)
    return TS.types["std_msgs/msg/Header"](stamp=time_, frame_id=frame)


def image_cdr(stamp_ns: int, seed: int) -> bytes:
    pixels = np.random.default_rng(seed).integers(0, 256, size=48 * 64 * 3, dtype=np.uint8)
    msg = TS.types[IMAGE](
        header=_header(stamp_ns, "wrist"), height=48, width=64, encoding="rgb8",
        is_bigendian=0, step=64 * 3, data=pixels,
    )
    return bytes(TS.serialize_cdr(msg, IMAGE))


def joints_cdr(stamp_ns: int, seq: int) -> bytes:
    msg = TS.types[JOINTS](
        header=_header(stamp_ns), name=[f"j{i}" for i in range(7)],
        position=np.full(7, float(seq)), velocity=np.zeros(7), effort=np.zeros(0),
    )
    return bytes(TS.serialize_cdr(msg, JOINTS))


def test_write_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "demos" / "episode_0003"
    sent: dict[str, list[tuple[int, bytes]]] = {"/wrist/image_raw": [], "/joint_states": []}
    writer = EpisodeWriter(path, TOPICS, META, min_free_bytes=0, flush_interval_s=0.05)
    t0 = 1_700_000_000_000_000_000
    for i in range(100):
        stamp = t0 + i * 5_000_000  # 200 Hz joints, 20 Hz images
        sent["/joint_states"].append((stamp, joints_cdr(stamp, i)))
        writer.write("/joint_states", stamp, sent["/joint_states"][-1][1])
        if i % 10 == 0:
            sent["/wrist/image_raw"].append((stamp + 1, image_cdr(stamp + 1, i)))
            writer.write("/wrist/image_raw", stamp + 1, sent["/wrist/image_raw"][-1][1])
        if i == 50:
            time.sleep(0.12)  # let the flush thread cut a chunk mid-episode
    info = writer.close(success=True, notes="clean grasp")
    assert writer.closed

    bag_file = path / "episode_0003.mcap"
    assert sorted(p.name for p in path.iterdir()) == ["episode.yaml", "episode_0003.mcap", "metadata.yaml"]

    # metadata.yaml: rosbag2 layout that `ros2 bag info` reads
    meta = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["version"] == 8 and meta["storage_identifier"] == "mcap"
    assert meta["relative_file_paths"] == ["episode_0003.mcap"]
    assert meta["message_count"] == 110
    assert meta["starting_time"]["nanoseconds_since_epoch"] == t0
    counts = {t["topic_metadata"]["name"]: t["message_count"] for t in meta["topics_with_message_count"]}
    assert counts == {"/wrist/image_raw": 10, "/joint_states": 100}
    assert all(t["topic_metadata"]["type_description_hash"].startswith("RIHS01_") for t in meta["topics_with_message_count"])

    # rosbags' own directory reader (matches metadata against storage, QoS included)
    with Reader(path) as reader:
        got: dict[str, list[tuple[int, bytes]]] = {t: [] for t in sent}
        for conn, stamp, raw in reader.messages():
            got[conn.topic].append((stamp, bytes(raw)))
        assert got == sent

    # the mcap library's reader: ros2 profile, schemas with embedded definitions, counts, bytes
    with bag_file.open("rb") as f:
        reader = make_reader(f)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        assert summary is not None
        schemas = {s.name: s for s in summary.schemas.values()}
        assert set(schemas) == {IMAGE, JOINTS}
        assert schemas[IMAGE].encoding == "ros2msg"
        assert b"MSG: std_msgs/Header" in schemas[IMAGE].data
        topics = {c.id: c.topic for c in summary.channels.values()}
        assert set(topics.values()) == set(sent)
        assert all(c.message_encoding == "cdr" for c in summary.channels.values())
        assert summary.statistics is not None
        assert {topics[k]: v for k, v in summary.statistics.channel_message_counts.items()} == counts
        assert summary.statistics.chunk_count >= 2  # the flush thread closed chunks
        got = {t: [] for t in sent}
        for schema, channel, message in reader.iter_messages(log_time_order=True):
            got[channel.topic].append((message.log_time, bytes(message.data)))
        assert got == sent

    # our reader, with deserialisation
    with open_bag(path) as bag:
        assert bag.topics == {"/wrist/image_raw": TopicInfo(IMAGE, 10, "cdr"), "/joint_states": TopicInfo(JOINTS, 100, "cdr")}
        image = next(bag.decoded_messages(["/wrist/image_raw"]))[3]
        assert (image.height, image.width, image.encoding, len(image.data)) == (48, 64, "rgb8", 48 * 64 * 3)
        assert bag.duration_s == pytest.approx(0.495)

    # episode.yaml
    doc = read_episode_yaml(path)
    assert doc["task"] == "feed_dog" and doc["episode_index"] == 3 and doc["operator"] == "ana"
    assert doc["success"] is True and doc["notes"] == "clean grasp" and doc["spec_hash"] == "abc123"
    assert doc["message_counts"] == counts and doc["message_count"] == 110
    assert doc["complete"] is True and doc["recovered"] is False
    assert doc["duration_s"] == pytest.approx(0.495)
    assert doc["start_time"].endswith("Z")
    assert info.episode_index == 3 and info.success is True and info.complete and not info.needs_repair


def test_flush_thread_makes_messages_durable_while_open(tmp_path: Path) -> None:
    path = tmp_path / "ep"
    writer = EpisodeWriter(path, {"/joint_states": JOINTS}, {}, min_free_bytes=0, flush_interval_s=0.1)
    try:
        for i in range(5):
            writer.write("/joint_states", 1000 + i, joints_cdr(1000 + i, i))
        deadline = time.monotonic() + 60  # a guard against a flusher that never runs, not a speed goal
        count = 0
        while time.monotonic() < deadline and count < 5:
            time.sleep(0.05)
            with open_bag(path, recover=True) as bag:  # the file as a crash would leave it
                count = bag.message_count
        assert count == 5
        assert (path / "episode.yaml").exists()
        assert read_episode_yaml(path)["complete"] is False
    finally:
        writer.close()
    with open_bag(path) as bag:
        assert bag.message_count == 5 and not bag.recovered


def test_manual_flush_without_thread(tmp_path: Path) -> None:
    writer = EpisodeWriter(tmp_path / "ep", {"/j": JOINTS}, min_free_bytes=0, flush_interval_s=None, fsync=False)
    writer.write("/j", 5, joints_cdr(5, 0))
    with open_bag(tmp_path / "ep", recover=True) as bag:
        assert bag.message_count == 0  # still in rosbags' pending chunk
    writer.flush()
    with open_bag(tmp_path / "ep", recover=True) as bag:
        assert bag.message_count == 1
    writer.close()


def test_existing_episode_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "episode_0000"
    path.mkdir()
    (path / "keep.txt").write_text("precious")
    with pytest.raises(EpisodeExistsError) as err:
        EpisodeWriter(path, TOPICS, META, min_free_bytes=0)
    assert str(path) in str(err.value) and "already exists" in str(err.value)
    assert [p.name for p in path.iterdir()] == ["keep.txt"]


def test_insufficient_space_is_refused_before_writing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    real = shutil.disk_usage

    def tiny(p: str | os.PathLike[str]):
        usage = real(p)
        return type(usage)(usage.total, usage.total - 10_000_000, 10_000_000)

    monkeypatch.setattr(shutil, "disk_usage", tiny)
    path = tmp_path / "ep"
    need = estimate_episode_bytes({"/wrist/image_raw": (30.0, 640 * 480 * 3)}, 60.0)
    assert need > 1e9
    with pytest.raises(InsufficientSpaceError) as err:
        EpisodeWriter(path, TOPICS, META, min_free_bytes=need)
    assert str(path) in str(err.value) and "GB free" in str(err.value)
    assert not path.exists()
    EpisodeWriter(path, TOPICS, META, min_free_bytes=1_000_000).discard()  # enough for a small one


def test_unwritable_directory_is_refused(tmp_path: Path) -> None:
    not_a_dir = tmp_path / "file"
    not_a_dir.write_text("x")
    with pytest.raises(BagWriteError, match="not a directory"):
        EpisodeWriter(not_a_dir / "ep", TOPICS, META, min_free_bytes=0)
    # a read-only directory, tried by a child process that obeys file modes even as root
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    locked.chmod(0o555)  # whatever the umask
    try:
        result = subprocess.run([sys.executable, "-c", LOCKED_CHILD, str(locked / "ep")], capture_output=True,
                                text=True, timeout=120, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                                preexec_fn=without_root_override)
    finally:
        locked.chmod(0o755)
    assert result.returncode == 3, result.stdout + result.stderr
    assert "not writable" in result.stdout and str(locked / "ep") in result.stdout
    assert list(locked.iterdir()) == []


LOCKED_CHILD = """
import sys
from hpt_ros.data import BagWriteError, EpisodeWriter
try:
    EpisodeWriter(sys.argv[1], {"/joint_states": "sensor_msgs/msg/JointState"}, min_free_bytes=0)
except BagWriteError as exc:
    print(exc)
    sys.exit(3)
"""


def test_unwritable_directory_probe(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The writability probe is a real file creation; simulate a read-only disk (root ignores modes)."""
    import tempfile

    def refuse(*args: object, **kwargs: object):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr(tempfile, "TemporaryFile", refuse)
    with pytest.raises(BagWriteError, match="not writable"):
        EpisodeWriter(tmp_path / "ep", TOPICS, META, min_free_bytes=0)
    assert not (tmp_path / "ep").exists()


def test_bad_topics_and_metadata_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "ep"
    with pytest.raises(BagTopicError, match="my_pkg/msg/Thing") as err:
        EpisodeWriter(path, {"/x": "my_pkg/msg/Thing"}, min_free_bytes=0)
    assert "/x" in str(err.value)
    with pytest.raises(BagTopicError, match="absolute"):
        EpisodeWriter(path, {"x": IMAGE}, min_free_bytes=0)
    with pytest.raises(BagWriteError, match="episode_index"):
        EpisodeWriter(path, TOPICS, {"episode_index": -1}, min_free_bytes=0)
    with pytest.raises(BagWriteError, match="plain YAML"):
        EpisodeWriter(path, TOPICS, {"notes": object()}, min_free_bytes=0)
    assert not path.exists()


def test_write_errors_and_discard(tmp_path: Path) -> None:
    path = tmp_path / "ep"
    writer = EpisodeWriter(path, TOPICS, META, min_free_bytes=0)
    with pytest.raises(BagTopicError, match="/other"):
        writer.write("/other", 1, joints_cdr(1, 1))
    with pytest.raises(BagWriteError, match="not CDR"):
        writer.write("/joint_states", 1, b"\xff\xff")
    writer.write("/joint_states", 1, joints_cdr(1, 1))
    writer.discard()
    assert not path.exists()
    with pytest.raises(BagWriteError, match="closed"):
        writer.write("/joint_states", 2, joints_cdr(2, 2))


def test_context_manager_keeps_data_on_error(tmp_path: Path) -> None:
    path = tmp_path / "ep"
    with pytest.raises(RuntimeError), EpisodeWriter(path, TOPICS, META, min_free_bytes=0) as writer:
        writer.write("/joint_states", 7, joints_cdr(7, 0))
        raise RuntimeError("teleop device lost")
    doc = read_episode_yaml(path)
    assert doc["complete"] is True and "teleop device lost" in doc["ended_by_error"]
    with open_bag(path) as bag:
        assert bag.message_count == 1
