"""The teleop recorder, end to end over real DDS between processes.

A fake FR3 (small 160x120 cameras, 100 Hz joint states) and the scripted teleoperator run
as their own processes for the whole module; each test starts the recorder
(``python -m hpt_ros.cli record``) as another process and drives it the way an operator
or a script does — over ``/hpt_recorder/command`` / ``/hpt_recorder/status``, by keys on a
real pseudo-terminal, with real signals (SIGINT, SIGTERM, SIGKILL). Every bag is read back
with two independent readers: rosbags (through ``hpt_ros.data.open_bag``) and the ``mcap``
library.

The module uses its own ROS_DOMAIN_ID (100 + pid % 100) and terminates every process it
started, whatever happens.
"""

from __future__ import annotations

import json
import os
import pty
import re
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import ROOT, require_module, without_root_override

require_module("cyclonedds")
require_module("mcap")

from mcap.reader import make_reader  # noqa: E402

from hpt_ros.data import list_episodes, open_bag, read_episode, repair_bag  # noqa: E402
from hpt_ros.spec import load_spec  # noqa: E402

DOMAIN_ID = 100 + os.getpid() % 100
SPEC = load_spec("franka_fr3")
CAMERAS = [s.topic for s in SPEC.image_sensors]
TOPICS = {s.topic for s in SPEC.sensors} | {SPEC.action.command.topic, SPEC.action.gripper.topic}
READY = np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4])


def _env() -> dict[str, str]:
    return dict(os.environ, PYTHONPATH=str(ROOT), ROS_DOMAIN_ID=str(DOMAIN_ID), PYTHONUNBUFFERED="1")


class Procs:
    """Processes started by a test; ``stop_all`` ends every one still running (only those)."""

    def __init__(self, log_dir: Path):
        self.log_dir = log_dir
        self.procs: list[subprocess.Popen] = []

    def spawn(self, name: str, args: list[str], **kwargs: Any) -> subprocess.Popen:
        if "stdout" not in kwargs:
            log = (self.log_dir / f"{name}.log").open("w")
            kwargs.update(stdout=log, stderr=subprocess.STDOUT)
        proc = subprocess.Popen([sys.executable, *args], env=_env(), cwd=ROOT, **kwargs)
        self.procs.append(proc)
        return proc

    def log(self, name: str) -> str:
        path = self.log_dir / f"{name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop_all(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)


class Control:
    """The test's DDS participant: sends recorder commands, follows its latched status."""

    def __init__(self) -> None:
        from hpt_ros.ros import make_transport
        from hpt_ros.ros.transport import QOS_DEFAULT, QOS_LATCHED

        self.t = make_transport("dds", "recorder_test_control", domain_id=DOMAIN_ID)
        self.status: dict[str, Any] = {}
        self.lock = threading.Lock()
        self.pub = self.t.create_publisher("/hpt_recorder/command", "std_msgs/msg/String", QOS_DEFAULT)
        self.t.create_subscription("/hpt_recorder/status", "std_msgs/msg/String", self._on_status, QOS_LATCHED)
        self.thread = threading.Thread(target=self.t.spin, daemon=True)
        self.thread.start()

    def _on_status(self, msg: Any) -> None:
        with self.lock:
            self.status = json.loads(msg.data)

    def send(self, word: str) -> None:
        msg = self.t.new_message("std_msgs/msg/String")
        msg.data = word
        self.pub.publish(msg)

    def wait(self, pred: Callable[[dict[str, Any]], bool], what: str, timeout: float = 20.0,
             proc: subprocess.Popen | None = None) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                status = dict(self.status)
            if status and pred(status):
                return status
            if proc is not None and proc.poll() is not None:
                raise AssertionError(f"recorder exited ({proc.returncode}) while waiting for {what}")
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; last status {self.status}")

    def close(self) -> None:
        self.t.shutdown()
        self.thread.join(5)


@pytest.fixture(scope="module")
def robot(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Procs]:
    """The fake FR3 and the scripted teleoperator, as two processes, for the whole module."""
    procs = Procs(tmp_path_factory.mktemp("robot_logs"))
    try:
        procs.spawn("fake_robot", ["-m", "hpt_ros.cli", "fake-robot", "--width", "160", "--height", "120",
                                   "--joint-state-rate-hz", "100", "--seed", "0", "--episode", "0"])
        procs.spawn("teleop", ["-m", "hpt_ros.nodes.scripted_teleop", "--seed", "0", "--episode", "0"])
        yield procs
    finally:
        procs.stop_all()


@pytest.fixture
def control() -> Iterator[Control]:
    c = Control()
    try:
        yield c
    finally:
        c.close()


def record_args(out: Path, *extra: str) -> list[str]:
    return ["-m", "hpt_ros.cli", "record", "--output", str(out), "--no-keyboard", "--status-period", "1",
            "--min-free-gb", "0.01", "--wait-for-topics", "20", *extra]


# -- reading back -------------------------------------------------------------------------------------

def read_with_rosbags(path: Path, recover: bool = False) -> dict[str, list[tuple[int, bytes, Any]]]:
    """topic -> [(timestamp, raw CDR, decoded message)], every message decoded by rosbags."""
    out: dict[str, list[tuple[int, bytes, Any]]] = {}
    with open_bag(path, recover=recover) as bag:
        for m in bag.messages():
            out.setdefault(m.topic, []).append((m.timestamp_ns, bytes(m.rawdata), bag.deserialize(m.rawdata,
                                                                                                    m.msgtype)))
    return out


def read_with_mcap(path: Path) -> dict[str, list[tuple[int, bytes]]]:
    """topic -> [(log time, raw data)] through the mcap library's indexed reader, plus its summary check."""
    (file,) = sorted(path.glob("*.mcap"))
    out: dict[str, list[tuple[int, bytes]]] = {}
    with file.open("rb") as f:
        reader = make_reader(f)
        assert reader.get_header().profile == "ros2"
        summary = reader.get_summary()
        assert summary is not None and summary.statistics is not None
        for schema, channel, message in reader.iter_messages(log_time_order=True):
            assert channel.message_encoding == "cdr" and schema is not None and schema.encoding == "ros2msg"
            out.setdefault(channel.topic, []).append((message.log_time, bytes(message.data)))
        counts = {ch.topic: summary.statistics.channel_message_counts.get(cid, 0)
                  for cid, ch in summary.channels.items()}
    assert counts == {t: len(v) for t, v in out.items()} | {t: 0 for t in counts if t not in out}
    return out


def check_episode(path: Path, *, recovered: bool = False) -> dict[str, list[tuple[int, bytes, Any]]]:
    """Both readers see the same messages (bytes and timestamps), matching episode.yaml."""
    by_rosbags = read_with_rosbags(path)
    by_mcap = read_with_mcap(path)
    assert set(by_rosbags) == set(by_mcap)
    for topic, msgs in by_rosbags.items():
        assert sorted((ts, raw) for ts, raw, _ in msgs) == sorted(by_mcap[topic]), topic
    info = read_episode(path)
    assert info.complete and not info.needs_repair and info.recovered == recovered
    assert info.message_counts == {t: len(v) for t, v in by_rosbags.items()} | {
        t: 0 for t in info.message_counts if t not in by_rosbags}
    assert set(info.metadata["topics"]) == TOPICS
    return by_rosbags


def joint_positions(msgs: list[tuple[int, bytes, Any]]) -> np.ndarray:
    arm = list(SPEC.action.arm_joints)
    rows = []
    for _, _, msg in msgs:
        names = list(msg.name)
        rows.append([msg.position[names.index(j)] for j in arm])
    return np.array(rows)


def wait_for_durable_messages(episode_dir: Path, count: int, proc: subprocess.Popen) -> int:
    """Wait until the recorder's own periodic flushes have put ``count`` complete messages in the
    episode's file (read as it grows); returns how many there were. 60 s guard a stuck flusher."""
    from hpt_ros.data.mcap_scan import scan_mcap

    deadline = time.monotonic() + 60
    durable = 0
    while durable < count:
        assert time.monotonic() < deadline, f"only {durable} messages reached {episode_dir}"
        assert proc.poll() is None, "the recorder exited"
        time.sleep(0.05)
        files = sorted(episode_dir.glob("*.mcap"))
        if files:
            durable = scan_mcap(files[0]).message_count
    return durable


# -- tests --------------------------------------------------------------------------------------------

def test_episodes_auto_reset_discard_kill_and_recover(robot: Procs, control: Control, tmp_path: Path) -> None:
    from hpt_ros.nodes.fake_robot import load_task
    from hpt_ros.sim.feed_dog import episode_layout
    from hpt_ros.sim.kinematics import tcp_position

    out = tmp_path / "demos"
    procs = Procs(tmp_path)
    try:
        # 1. auto mode: 2 episodes of 3 s, the fake robot and the teleoperator reset before each
        auto = procs.spawn("auto", record_args(out, "--episodes", "2", "--episode-duration", "3", "--reset-robot",
                                               "--reset-settle", "0.5", "--operator", "robot_test",
                                               "--notes", "scripted"))
        assert auto.wait(60) == 0, procs.log("auto")

        # 2. manual mode over topics: start, discard, start again, save as failure, start, SIGKILL
        manual = procs.spawn("manual", record_args(out))
        control.wait(lambda s: s["state"] == "idle" and s["output_dir"] == str(out.absolute()), "the recorder",
                     30, manual)
        control.send("start")
        control.wait(lambda s: s["state"] == "recording" and s["episode"] == 2, "episode 2", proc=manual)
        time.sleep(1.0)
        control.send("discard")
        control.wait(lambda s: s["discarded"] == 1 and s["state"] == "idle", "the discard", proc=manual)
        assert not (out / "episode_0002").exists()
        control.send("note re-recorded after a discard")
        control.send("start")
        control.wait(lambda s: s["state"] == "recording" and s["episode"] == 2, "episode 2 again", proc=manual)
        time.sleep(3.0)
        control.send("save_failure")
        control.wait(lambda s: s["saved"] == 1 and s["state"] == "idle", "the save", proc=manual)
        control.send("start")
        control.wait(lambda s: s["state"] == "recording" and s["episode"] == 3 and s["elapsed_s"] >= 1.0,
                     "episode 3", proc=manual)
        durable = wait_for_durable_messages(out / "episode_0003", 200, manual)
        manual.send_signal(signal.SIGKILL)  # for real: no handler runs
        manual.wait(10)
        assert manual.returncode == -signal.SIGKILL
    finally:
        procs.stop_all()

    episodes = list_episodes(out)
    assert [e.path.name for e in episodes] == [f"episode_{i:04d}" for i in range(4)]
    task = load_task("feed_dog")
    treats = [np.array(episode_layout(task, 0, k).treat_xy) for k in (0, 1)]

    # the two auto episodes: complete, metadata, every topic at about its rate, a fresh scene each
    for k in (0, 1):
        info = episodes[k]
        data = check_episode(info.path)
        meta = info.metadata
        assert (meta["episode_index"], meta["task"], meta["operator"], meta["notes"]) == (k, "feed_dog",
                                                                                          "robot_test", "scripted")
        assert meta["spec_hash"] == SPEC.spec_hash and meta["success"] is None
        assert meta["ended_by"] == "duration" and meta["interrupted"] is False
        assert meta["recorder"]["dropped"] == 0
        # ended by its duration, not before (how far past it depends on the machine's load)
        assert info.duration_s >= 2.5
        counts = Counter({t: len(v) for t, v in data.items()})
        assert set(counts) == TOPICS and min(counts.values()) >= 2, counts  # rates are bench/'s business
        # bag timestamps are receive times on the recorder's clock, in order, within the episode
        for topic, msgs in data.items():
            assert [ts for ts, _, _ in msgs] == sorted(ts for ts, _, _ in msgs), topic
        stamps = [ts for v in data.values() for ts, _, _ in v]
        assert max(stamps) - min(stamps) == pytest.approx(info.duration_s * 1e9, abs=1e3)
        image = data[CAMERAS[0]][0][2]
        assert (image.width, image.height, image.encoding) == (160, 120, "rgb8")
        q = joint_positions(data["/joint_states"])
        assert np.abs(q[0] - READY).max() < 0.05, "the episode starts from the reset pose"
        start, end = tcp_position(q[0])[:2], tcp_position(q[-1])[:2]
        assert np.linalg.norm(end - treats[k]) < np.linalg.norm(start - treats[k]) - 0.05, "moved towards its treat"
        assert np.linalg.norm(end - treats[k]) < np.linalg.norm(end - treats[1 - k]), "this episode's treat"
        commands = data[SPEC.action.command.topic]
        assert list(commands[-1][2].joint_names) == list(SPEC.action.arm_joints)

    # the re-recorded episode 2 (the discarded attempt left nothing): saved as a failure
    info = episodes[2]
    check_episode(info.path)
    assert info.success is False and info.metadata["ended_by"] == "save_failure"
    assert info.notes == "re-recorded after a discard"
    assert info.duration_s >= 2.5  # recorded for the 3 s the test waited, give or take the start
    assert not [p for p in out.iterdir() if p.name not in {e.path.name for e in episodes}]

    # the killed episode 3: says what it was, needs repair, and keeps all but the last second
    info = episodes[3]
    assert info.needs_repair and not info.complete
    assert info.metadata["episode_index"] == 3 and info.metadata["complete"] is False
    partial = read_with_rosbags(info.path, recover=True)
    report = repair_bag(info.path)
    assert report.repaired and report.message_counts == {t: len(v) for t, v in partial.items()}
    data = check_episode(info.path, recovered=True)
    # what the periodic flushes had put in the file before the kill is all there
    assert sum(len(v) for v in data.values()) >= durable
    assert {t for t, v in data.items() if v} == TOPICS


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_signal_closes_the_episode_cleanly(robot: Procs, control: Control, tmp_path: Path, sig: int) -> None:
    out = tmp_path / "demos"
    procs = Procs(tmp_path)
    try:
        rec = procs.spawn("recorder", record_args(out))
        control.wait(lambda s: s["state"] == "idle" and s["output_dir"] == str(out.absolute()), "the recorder",
                     30, rec)
        control.send("start")
        control.wait(lambda s: s["state"] == "recording" and s["elapsed_s"] >= 1.5, "1.5 s of recording", proc=rec)
        rec.send_signal(sig)
        assert rec.wait(20) == 0, procs.log("recorder")
    finally:
        procs.stop_all()
    (info,) = list_episodes(out)
    data = check_episode(info.path)
    assert info.metadata["interrupted"] is True
    assert info.metadata["ended_by"] == signal.Signals(sig).name
    assert info.success is None and info.duration_s >= 1.4
    assert {t for t, v in data.items() if v} == TOPICS


def _controlling_terminal() -> None:
    """preexec_fn (after setsid): make stdin, the pty, the controlling terminal, as in a real shell."""
    import fcntl

    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


def test_keys_on_a_terminal(robot: Procs, control: Control, tmp_path: Path) -> None:
    """s starts, f saves as a failure, q quits; the status line is redrawn in place; the terminal is restored."""
    out = tmp_path / "demos"
    master, slave = pty.openpty()
    import fcntl

    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 40, 250, 0, 0))  # a wide terminal: 40 x 250
    before = termios.tcgetattr(slave)
    procs = Procs(tmp_path)
    screen = bytearray()

    def read_screen() -> None:
        while True:
            try:
                chunk = os.read(master, 4096)
            except OSError:
                return
            if not chunk:
                return
            screen.extend(chunk)

    reader = threading.Thread(target=read_screen, daemon=True)
    reader.start()
    try:
        args = [a for a in record_args(out) if a != "--no-keyboard"]
        rec = procs.spawn("tty", args, stdin=slave, stdout=slave, stderr=slave, start_new_session=True,
                          preexec_fn=_controlling_terminal)
        control.wait(lambda s: s["state"] == "idle" and s["output_dir"] == str(out.absolute()), "the recorder",
                     30, rec)
        deadline = time.monotonic() + 10
        while b"[s]tart" not in screen and time.monotonic() < deadline:
            time.sleep(0.05)  # the key reader is up once the help is shown
        os.write(master, b"s")
        control.wait(lambda s: s["state"] == "recording" and s["elapsed_s"] >= 1.0, "recording", proc=rec)
        os.write(master, b"f")
        control.wait(lambda s: s["saved"] == 1, "the save", proc=rec)
        os.write(master, b"q")
        assert rec.wait(20) == 0
        after = termios.tcgetattr(slave)
    finally:
        procs.stop_all()
        os.close(slave)
        reader.join(2)
        os.close(master)
    text = screen.decode(errors="replace")
    assert "\r\x1b[2K● REC episode 0000" in text
    # rates, not their values (a busy machine slows the fake robot): the line shows live traffic
    assert re.search(r"REC episode 0000 +[0-9.]+ s \| wrist_camera [1-9]\d*Hz third_person_camera [1-9]\d*Hz "
                     r"joint_states [1-9]\d*Hz action [1-9]\d*Hz gripper [1-9]\d*Hz \| dropped 0", text), text[-2000:]
    assert after[3] & termios.ICANON and after[3] & termios.ECHO and after == before
    (info,) = list_episodes(out)
    check_episode(info.path)
    assert info.success is False and info.metadata["ended_by"] == "save_failure"


def test_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        result = subprocess.run([sys.executable, *record_args(locked / "demos", "--episodes", "1",
                                                              "--episode-duration", "1")],
                                env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=60,
                                preexec_fn=without_root_override)
    finally:
        locked.chmod(0o755)
    assert result.returncode != 0
    assert "error:" in result.stderr and "not writable" in result.stderr and str(locked) in result.stderr
    assert list(locked.iterdir()) == []


def test_full_disk_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run([sys.executable, *record_args(tmp_path / "demos", "--min-free-gb", "1e9")],
                            env=_env(), cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "error:" in result.stderr and "GB free" in result.stderr and "min_free_gb" in result.stderr
    assert list(tmp_path.iterdir()) == []
