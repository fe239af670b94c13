"""Crash safety for real: SIGKILL a recording process, then repair and read the bag back."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml
from mcap.reader import make_reader
from rosbags.rosbag2 import Reader
from rosbags.typesys import Stores, get_typestore

from hpt_ros.data import (
    BagOpenError,
    BagTruncatedError,
    EpisodeWriter,
    list_episodes,
    open_bag,
    read_episode_yaml,
    repair_bag,
)
from hpt_ros.data.mcap_scan import scan_mcap

ROOT = Path(__file__).resolve().parents[1]
TS = get_typestore(Stores.ROS2_HUMBLE)
JOINTS = "sensor_msgs/msg/JointState"

# The recorder: JointState at 200 Hz (sequence number in position[0] and frame_id) and a
# small Image at 20 Hz, timestamps = wall clock, until it is killed.
RECORDER = r"""
import sys, time
import numpy as np
from rosbags.typesys import Stores, get_typestore
from hpt_ros.data import EpisodeWriter

ts = get_typestore(Stores.ROS2_HUMBLE)
T, H = ts.types["builtin_interfaces/msg/Time"], ts.types["std_msgs/msg/Header"]
JS, IM = ts.types["sensor_msgs/msg/JointState"], ts.types["sensor_msgs/msg/Image"]
writer = EpisodeWriter(sys.argv[1], {"/joint_states": "sensor_msgs/msg/JointState",
                                     "/camera/image_raw": "sensor_msgs/msg/Image"},
                       {"task": "kill_test", "episode_index": 0, "operator": "pytest"},
                       min_free_bytes=0)
pixels = np.zeros(48 * 64 * 3, dtype=np.uint8)
print("ready", flush=True)
start = time.monotonic()
seq = 0
while True:
    now = time.time_ns()
    header = H(stamp=T(sec=now // 10**9, nanosec=now % 10**9), frame_id=str(seq))
    js = JS(header=header, name=["seq"], position=np.array([float(seq)]),
            velocity=np.zeros(0), effort=np.zeros(0))
    writer.write("/joint_states", now, ts.serialize_cdr(js, "sensor_msgs/msg/JointState"))
    if seq % 10 == 0:
        im = IM(header=header, height=48, width=64, encoding="rgb8", is_bigendian=0, step=192, data=pixels)
        writer.write("/camera/image_raw", now, ts.serialize_cdr(im, "sensor_msgs/msg/Image"))
    seq += 1
    time.sleep(max(0.0, start + seq / 200 - time.monotonic()))
"""


def _seqs_rosbags(path: Path) -> list[tuple[int, int]]:
    out = []
    with Reader(path) as reader:  # rosbags' strict directory reader
        for conn, stamp, raw in reader.messages():
            if conn.topic == "/joint_states":
                out.append((stamp, int(TS.deserialize_cdr(raw, JOINTS).position[0])))
    return out


def _seqs_mcap(file: Path) -> tuple[list[tuple[int, int]], dict[str, int]]:
    out = []
    counts: dict[str, int] = {}
    with file.open("rb") as f:
        reader = make_reader(f)
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None
        for cid, n in summary.statistics.channel_message_counts.items():
            counts[summary.channels[cid].topic] = n
        for _schema, channel, message in reader.iter_messages(log_time_order=True):
            if channel.topic == "/joint_states":
                out.append((message.log_time, int(TS.deserialize_cdr(message.data, JOINTS).position[0])))
    return out, counts


def _joint_states_in_file(file: Path) -> int:
    """Complete joint-state records in a file that is still being written."""
    scan = scan_mcap(file)
    return sum(n for cid, n in scan.counts.items() if scan.channels[cid].topic == "/joint_states")


def test_sigkill_then_repair(tmp_path: Path) -> None:
    path = tmp_path / "episode_0000"
    bag_file = path / "episode_0000.mcap"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.Popen([sys.executable, "-c", RECORDER, str(path)], stdout=subprocess.PIPE, env=env)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().strip() == b"ready"
        # kill once the writer's periodic flushes have put 400 joint states in the file (the
        # child never flushes by itself); the deadline only guards against a flusher that never runs
        durable = 0
        deadline = time.monotonic() + 120
        while durable < 400:
            assert time.monotonic() < deadline, f"only {durable} joint states reached the file"
            assert proc.poll() is None, "the recorder died"
            time.sleep(0.05)
            if bag_file.exists():
                durable = _joint_states_in_file(bag_file)
        kill_ns = time.time_ns()
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=10) == -signal.SIGKILL
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()

    assert not (path / "metadata.yaml").exists()
    with pytest.raises(BagTruncatedError, match="episode_0000.mcap"):
        open_bag(path)
    [info] = list_episodes(tmp_path)
    assert info.needs_repair and not info.complete and info.task == "kill_test"

    report = repair_bag(path)
    assert report.repaired and report.original == path / "episode_0000.mcap.orig"
    assert report.original.exists() and report.original.stat().st_size == report.original_size
    assert report.truncated_at is not None

    # every message that had reached the file before the kill is there, contiguous and in order
    for seqs in (_seqs_rosbags(path), _seqs_mcap(bag_file)[0]):
        stamps = [s for s, _ in seqs]
        assert [q for _, q in seqs] == list(range(len(seqs)))
        assert stamps == sorted(stamps) and stamps[-1] < kill_ns
        assert len(seqs) >= durable
    lost_s = (kill_ns - stamps[-1]) / 1e9
    print(f"messages lost to SIGKILL: last {lost_s:.3f} s ({len(seqs)} joint states recovered)")

    _, counts = _seqs_mcap(bag_file)
    assert counts == report.message_counts
    assert counts["/camera/image_raw"] >= len(seqs) // 10 - 1
    meta = yaml.safe_load((path / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert meta["relative_file_paths"] == ["episode_0000.mcap"]
    assert meta["message_count"] == sum(counts.values())
    doc = read_episode_yaml(path)
    assert doc["recovered"] is True and doc["complete"] is True
    assert doc["message_counts"] == counts and doc["task"] == "kill_test"
    assert doc["repair"]["original"] == "episode_0000.mcap.orig"

    again = repair_bag(path)  # idempotent: a healthy bag is left alone
    assert not again.repaired and again.message_counts == counts
    [info] = list_episodes(tmp_path)
    assert info.recovered and info.complete and not info.needs_repair


def _closed_episode(path: Path, n: int) -> list[bytes]:
    """A cleanly closed episode with several chunks; returns the CDR bytes written."""
    writer = EpisodeWriter(path, {"/j": JOINTS}, {"episode_index": 1}, min_free_bytes=0, flush_interval_s=None)
    sent = []
    for i in range(n):
        stamp = TS.types["builtin_interfaces/msg/Time"](sec=i, nanosec=0)
        js = TS.types[JOINTS](
            header=TS.types["std_msgs/msg/Header"](stamp=stamp, frame_id=""),
            name=["a"], position=np.array([float(i)]), velocity=np.zeros(0), effort=np.zeros(0),
        )
        sent.append(bytes(TS.serialize_cdr(js, JOINTS)))
        writer.write("/j", 1_000_000 + i, sent[-1])
        if i % 10 == 9:
            writer.flush()  # one chunk per 10 messages
    writer.close()
    return sent


@pytest.mark.parametrize("as_directory", [True, False])
def test_truncated_bag_and_recovery(tmp_path: Path, as_directory: bool) -> None:
    sent = _closed_episode(tmp_path / "ep", 100)
    src = tmp_path / "ep" / "ep.mcap"
    data = src.read_bytes()
    if as_directory:
        target = src
    else:
        target = tmp_path / "bare.mcap"
    target.write_bytes(data[: len(data) // 2])
    opened = tmp_path / "ep" if as_directory else target
    with pytest.raises(BagTruncatedError) as err:
        open_bag(opened)
    assert target.name in str(err.value)
    with open_bag(opened, recover=True) as bag:
        got = [bytes(m.rawdata) for m in bag.messages()]
    assert 0 < len(got) < 100 and len(got) % 10 == 0  # whole chunks only
    assert got == sent[: len(got)]

    report = repair_bag(opened)
    assert report.repaired and report.message_counts == {"/j": len(got)}
    with open_bag(opened) as bag:
        assert not bag.recovered and [bytes(m.rawdata) for m in bag.messages()] == got
    assert target.with_name(target.name + ".orig").read_bytes() == data[: len(data) // 2]


def test_repair_resumes_after_interrupted_repair(tmp_path: Path) -> None:
    """If a repair died after keeping the original but before moving the new file in,
    running it again uses the kept original."""
    sent = _closed_episode(tmp_path / "ep", 30)
    src = tmp_path / "ep" / "ep.mcap"
    data = src.read_bytes()
    (tmp_path / "ep" / "metadata.yaml").unlink()
    src.unlink()
    src.with_name("ep.mcap.orig").write_bytes(data[: len(data) - 100])
    report = repair_bag(tmp_path / "ep")
    assert report.repaired and report.message_counts == {"/j": 30}
    with open_bag(tmp_path / "ep") as bag:
        assert [bytes(m.rawdata) for m in bag.messages()] == sent


def test_repair_refuses_non_mcap(tmp_path: Path) -> None:
    (tmp_path / "x").mkdir()
    with pytest.raises(BagOpenError, match="exactly one MCAP"):
        repair_bag(tmp_path / "x")
    (tmp_path / "y.db3").write_bytes(b"")
    with pytest.raises(BagOpenError, match="MCAP"):
        repair_bag(tmp_path / "y.db3")


def test_cli_adapter(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import argparse

    from hpt_ros.data.cli import run_repair

    _closed_episode(tmp_path / "ep", 20)
    file = tmp_path / "ep" / "ep.mcap"
    file.write_bytes(file.read_bytes()[:-50])
    assert run_repair(argparse.Namespace(paths=[str(tmp_path / "ep")])) == 0
    assert "recovered 20 messages" in capsys.readouterr().out
    assert run_repair(argparse.Namespace(paths=[str(tmp_path / "ep"), str(tmp_path / "nope")])) == 1
    captured = capsys.readouterr()
    assert "nothing to do" in captured.out and "nope" in captured.err


# A disk that fills mid-recording: the child may not grow any file past 3 MiB (RLIMIT_FSIZE; the
# kernel then refuses the write as it does on a full disk, without needing root or a mount).
FILLING = r"""
import resource, signal, sys
import numpy as np
from rosbags.typesys import Stores, get_typestore
from hpt_ros.data import BagWriteError, EpisodeWriter

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a failed write, not a killed process
resource.setrlimit(resource.RLIMIT_FSIZE, (3 << 20, 3 << 20))
ts = get_typestore(Stores.ROS2_HUMBLE)
T, H = ts.types["builtin_interfaces/msg/Time"], ts.types["std_msgs/msg/Header"]
JS, IM = ts.types["sensor_msgs/msg/JointState"], ts.types["sensor_msgs/msg/Image"]
writer = EpisodeWriter(sys.argv[1], {"/joint_states": "sensor_msgs/msg/JointState",
                                     "/camera/image_raw": "sensor_msgs/msg/Image"},
                       {"task": "full_disk", "episode_index": 0}, min_free_bytes=0, flush_interval_s=None,
                       fsync=False)
pixels = np.random.default_rng(0).integers(0, 256, 48 * 64 * 3, dtype=np.uint8)  # incompressible
seq = 0
try:
    while seq < 100_000:
        header = H(stamp=T(sec=seq // 100, nanosec=(seq % 100) * 10_000_000), frame_id=str(seq))
        js = JS(header=header, name=["seq"], position=np.array([float(seq)]), velocity=np.zeros(0),
                effort=np.zeros(0))
        writer.write("/joint_states", 10_000_000 * seq, ts.serialize_cdr(js, "sensor_msgs/msg/JointState"))
        im = IM(header=header, height=48, width=64, encoding="rgb8", is_bigendian=0, step=192, data=pixels)
        writer.write("/camera/image_raw", 10_000_000 * seq, ts.serialize_cdr(im, "sensor_msgs/msg/Image"))
        seq += 1
        if seq % 10 == 0:
            writer.flush()  # what the flush thread does; explicit here, so the count is exact
            print("durable", seq, flush=True)
except BagWriteError as exc:
    print("write refused", exc, flush=True)
try:
    writer.write("/joint_states", 10_000_000 * seq, ts.serialize_cdr(js, "sensor_msgs/msg/JointState"))
except BagWriteError as exc:
    print("then refused", exc, flush=True)
try:
    writer.close()
except BagWriteError as exc:
    print("close refused", exc, flush=True)
    sys.exit(3)
"""


def test_disk_filling_mid_recording_fails_clearly_and_keeps_what_was_written(tmp_path: Path) -> None:
    path = tmp_path / "episode_0000"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    result = subprocess.run([sys.executable, "-c", FILLING, str(path)], capture_output=True, text=True, env=env,
                            timeout=300)
    lines = result.stdout.splitlines()
    durable = max(int(line.split()[1]) for line in lines if line.startswith("durable "))
    refused = [line for line in lines if line.startswith("write refused ")]
    # the write that does not fit is an error naming the episode and the cause, not a crash
    assert len(refused) == 1 and str(path) in refused[0] and "write failed" in refused[0], result.stdout[-2000:]
    assert "File too large" in refused[0] or "No space left" in refused[0]
    then = [line for line in lines if line.startswith("then refused ")]
    assert len(then) == 1 and "failed earlier" in then[0]  # and stays one: no half-written messages after it
    assert result.returncode == 3 and "close refused" in lines[-1], result.stderr[-2000:]
    assert 50 <= durable < 100_000  # the limit was reached mid-episode

    # with space again, what had reached the disk comes back
    [info] = list_episodes(tmp_path)
    assert info.needs_repair and info.task == "full_disk"
    report = repair_bag(path)
    assert report.repaired
    seqs = _seqs_rosbags(path)
    assert [q for _, q in seqs] == list(range(len(seqs))) and len(seqs) >= durable
    assert report.message_counts["/camera/image_raw"] >= durable
