"""The teleop recorder on the ``replay`` transport (simulated time, no middleware), and its parts.

* The same nodes as live — fake FR3, scripted teleoperator, recorder — run in one process
  on sibling replay transports: auto mode records two episodes with resets, and the bags
  carry simulated time (the transport's clock, not the wall clock).
* Re-recording a bag through a replay gives byte-identical messages at identical
  timestamps: raw subscriptions, no deserialise/serialise round trip.
* Settings (action sources, QoS per topic, extra topics) and the helpers (header stamps,
  output-folder checks, commands) behave as documented.
"""

from __future__ import annotations

import json
import logging
import os
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from hpt_ros.data import BagWriteError, InsufficientSpaceError, list_episodes, open_bag
from hpt_ros.nodes.recorder_console import KEYS
from hpt_ros.nodes.recorder_topics import header_stamp_ns, recorded_topics
from hpt_ros.nodes.teleop_recorder import TeleopRecorder, check_output_dir
from hpt_ros.ros.replay import ReplayTransport
from hpt_ros.ros.transport import Reliability
from hpt_ros.spec import load_spec

SPEC = load_spec("franka_fr3")
START = 1000.0


def recorder_params(out: Path, **extra: object) -> dict[str, object]:
    return {"output_dir": str(out), "keyboard": False, "min_free_gb": 0.01, "fsync": False, "status_period_s": 0.0,
            **extra}


def test_auto_mode_in_simulated_time(tmp_path: Path) -> None:
    from hpt_ros.nodes.fake_robot import FakeRobot
    from hpt_ros.nodes.scripted_teleop import ScriptedTeleopNode

    world = ReplayTransport("fake_robot", {"width": 64, "height": 48, "joint_state_rate_hz": 200.0},
                            start_time=START, record=False)
    FakeRobot(world, SPEC)
    teleop = ScriptedTeleopNode(world.sibling("scripted_teleop"), SPEC)
    recorder = TeleopRecorder(world.sibling("teleop_recorder", recorder_params(
        tmp_path, episodes=2, episode_duration_s=2.0, reset_robot=True, reset_settle_s=0.5)), SPEC)
    end = world.run(until=START + 60, stop=lambda: recorder.finished)
    assert recorder.close() == 0
    assert recorder.finished and len(recorder.saved) == 2 and end < START + 10
    assert teleop.episode == 1  # reset to each episode's scene

    for k, info in enumerate(list_episodes(tmp_path)):
        assert info.complete and info.episode_index == k and info.metadata["transport"] == "replay"
        counts = info.message_counts
        # a perfect executor in simulated time: exact rates
        assert counts["/joint_states"] in (400, 401) and counts["/wrist_camera/color/image_raw"] in (60, 61)
        assert counts[SPEC.action.command.topic] in (30, 31) and counts[SPEC.action.gripper.topic] in (30, 31)
        with open_bag(info.path) as bag:
            stamps = [m.timestamp_ns for m in bag.messages()]
            # bag time is the transport's (simulated) clock
            assert START * 1e9 <= min(stamps) and max(stamps) - min(stamps) <= 2.0e9
            first = next(msg for _, _, _, msg in bag.decoded_messages(["/joint_states"]))
        ready = np.array([0.0, -np.pi / 4, 0.0, -3 * np.pi / 4, 0.0, np.pi / 2, np.pi / 4])
        assert np.abs(np.asarray(first.position[:7]) - ready).max() < 1e-6  # starts from the reset pose


def test_rerecording_a_bag_keeps_bytes_and_timestamps(tmp_path: Path) -> None:
    from hpt_ros.nodes.fake_robot import FakeRobot
    from hpt_ros.nodes.scripted_teleop import ScriptedTeleopNode

    world = ReplayTransport("fake_robot", {"width": 32, "height": 24}, start_time=START, record=False)
    FakeRobot(world, SPEC)
    ScriptedTeleopNode(world.sibling("scripted_teleop", {"follow_recorder": False}), SPEC)
    first = TeleopRecorder(world.sibling("teleop_recorder", recorder_params(tmp_path / "a")), SPEC)
    first.command("start")
    world.run(until=START + 1.5)
    first.command("save")
    world.run(until=START + 1.6)
    assert first.close() == 0
    (original,) = list_episodes(tmp_path / "a")

    replay = ReplayTransport("teleop_recorder", recorder_params(tmp_path / "b"), record=False)
    again = TeleopRecorder(replay, SPEC)
    again.command("start")
    replay.feed_bag(original.path)
    replay.run()
    assert again.close("end of bag") == 0
    (copy,) = list_episodes(tmp_path / "b")
    assert copy.metadata["ended_by"] == "end of bag"

    def messages(path: Path) -> set[tuple[str, int, bytes]]:
        with open_bag(path) as bag:
            return {(m.topic, m.timestamp_ns, bytes(m.rawdata)) for m in bag.messages()}

    before, after = messages(original.path), messages(copy.path)
    assert after and after <= before
    # all but what came before the recorder's first control tick (it starts the episode): only
    # a head of at most one tick (and the messages at that instant) is missing, nothing later
    missing, first = before - after, min(ts for _, ts, _ in before)
    first_copied = min(ts for _, ts, _ in after)
    assert all(ts < first_copied for _, ts, _ in missing)
    assert max((ts for _, ts, _ in missing), default=first) - first < 0.06e9
    assert len(after) > 0.9 * len(before)


def test_recorded_topics_by_action_source() -> None:
    topics = recorded_topics(SPEC)
    assert [(t.topic, t.role) for t in topics] == [
        ("/wrist_camera/color/image_raw", "sensor"), ("/third_person_camera/color/image_raw", "sensor"),
        ("/joint_states", "sensor"), (SPEC.action.command.topic, "action"),
        (SPEC.action.gripper.topic, "action_gripper")]
    qos = {t.topic: t.qos.reliability for t in topics}
    assert qos["/wrist_camera/color/image_raw"] is Reliability.BEST_EFFORT  # cameras publish best effort
    assert qos["/joint_states"] is Reliability.RELIABLE
    assert all(t.stamped for t in topics if t.role != "action_gripper")

    leader = recorded_topics(SPEC, action_source="joint_state", best_effort_topics=["/leader/joint_states"])
    assert [(t.topic, t.type, t.best_effort) for t in leader if t.role.startswith("action")] == [
        ("/leader/joint_states", "sensor_msgs/msg/JointState", True)]
    mouse = recorded_topics(SPEC, action_source="twist", action_gripper_topic="/spacemouse/gripper",
                            extra_topics=["/tf:tf2_msgs/msg/TFMessage"])
    assert [(t.topic, t.type) for t in mouse if t.role != "sensor"] == [
        ("/spacemouse/twist", "geometry_msgs/msg/TwistStamped"),
        ("/spacemouse/gripper", "std_msgs/msg/Float64MultiArray"), ("/tf", "tf2_msgs/msg/TFMessage")]
    vr = recorded_topics(SPEC, action_source="pose", action_topic="/quest/right", action_gripper_topic="none")
    assert [t.topic for t in vr if t.role != "sensor"] == ["/quest/right"]
    assert len(recorded_topics(SPEC, action_gripper_topic="none")) == 4
    for bad in ({"action_source": "joystick"}, {"extra_topics": ["/tf"]}, {"action_topic": "relative"},
                {"extra_topics": ["/joint_states:std_msgs/msg/String"]}):
        with pytest.raises(ValueError):
            recorded_topics(SPEC, **bad)  # type: ignore[arg-type]


def test_header_stamp_from_cdr_bytes() -> None:
    from hpt_ros.msgs import messages
    from hpt_ros.msgs.idl import MESSAGE_TYPES
    from hpt_ros.ros.dds import serialize

    msg = MESSAGE_TYPES["sensor_msgs/msg/JointState"]()
    messages.fill_joint_state(msg, ["a"], [1.0], stamp_s=1234.5)
    assert header_stamp_ns(serialize(msg)) == 1234_500_000_000
    big_endian = b"\x00\x00\x00\x00" + struct.pack(">iI", 7, 9)
    assert header_stamp_ns(big_endian) == 7_000_000_009 and header_stamp_ns(b"\x00\x01") == 0


def test_output_dir_checks(tmp_path: Path) -> None:
    assert check_output_dir(tmp_path / "a" / "b", 0) == (tmp_path / "a" / "b") and (tmp_path / "a" / "b").is_dir()
    (tmp_path / "file").write_text("x")
    with pytest.raises(BagWriteError, match="not a directory"):
        check_output_dir(tmp_path / "file" / "demos", 0)
    with pytest.raises(InsufficientSpaceError, match="min_free_gb"):
        check_output_dir(tmp_path / "c", 1 << 62)
    assert not (tmp_path / "c").exists()


def test_keys_and_commands(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    assert {KEYS[k] for k in "s\n fdrq"} == {"start", "save", "save_failure", "discard", "restart", "quit"}
    world = ReplayTransport("teleop_recorder", recorder_params(tmp_path), start_time=START,
                            record=["/hpt_recorder/status"])
    rec = TeleopRecorder(world, SPEC)
    for word in ("save", "discard", "bogus", "note first take", "start", "start", "restart"):
        rec.command(word)
    with caplog.at_level(logging.INFO, logger="hpt_ros.teleop_recorder"):
        world.run(until=START + 0.2)
    said = [r.getMessage() for r in caplog.records if r.name == "hpt_ros.teleop_recorder"]
    warnings = [r.getMessage() for r in caplog.records if r.name == "hpt_ros.teleop_recorder"
                and r.levelno == logging.WARNING]
    # each refused command says why, once; the bogus one names itself and the commands there are
    assert warnings[:2] == ["not recording: nothing to save", "not recording: nothing to discard"]
    assert warnings[2].startswith("unknown command 'bogus'; expected one of ") and "save_failure" in warnings[2]
    assert any(m.startswith("already recording episode 0") for m in warnings[3:])
    assert "note set: 'first take'" in said
    assert rec.state == "recording" and rec.discarded == 1 and rec.episode is not None
    assert "unknown command" not in rec.last_event
    rec.command("save_failure")
    rec.command("quit")
    world.run(until=START + 0.4)
    assert rec.finished and rec.close() == 0
    (info,) = list_episodes(tmp_path)
    assert info.success is False and info.episode_index == 0
    assert info.notes is None or info.notes == ""  # the note went to the discarded first take
    assert '"state": "done"' in world.published_on("/hpt_recorder/status")[-1].msg.data


# The recorder on a disk that fills mid-episode: the child may not grow a file past 4 MiB
# (RLIMIT_FSIZE: the kernel refuses the write as a full disk does); two noisy 160x120 cameras
# at 30 Hz reach that about 1 s of simulated time into the episode.
FILLING_RECORDER = r"""
import json, resource, signal, sys
import numpy as np
from hpt_ros.msgs import messages
from hpt_ros.nodes.teleop_recorder import TeleopRecorder
from hpt_ros.ros.replay import ReplayTransport
from hpt_ros.spec import load_spec

spec = load_spec("franka_fr3")
world = ReplayTransport("robot", start_time=1000.0, record=False)
rng = np.random.default_rng(0)
cameras = [(world.create_publisher(s.topic, s.type), s.topic) for s in spec.image_sensors]
joints = world.create_publisher("/joint_states", "sensor_msgs/msg/JointState")
command = world.create_publisher(spec.action.command.topic, spec.action.command.type)
gripper = world.create_publisher(spec.action.gripper.topic, spec.action.gripper.type)

def publish_images():
    for pub, topic in cameras:
        frame = rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)  # incompressible
        pub.publish(messages.numpy_to_image(world.new_message("sensor_msgs/msg/Image"), frame, "rgb8",
                                            stamp_s=world.now()))

def publish_robot():
    q = np.zeros(7)
    joints.publish(messages.fill_joint_state(world.new_message("sensor_msgs/msg/JointState"),
                                             list(spec.action.arm_joints), q, stamp_s=world.now()))
    command.publish(messages.fill_joint_trajectory(world.new_message(spec.action.command.type),
                                                   spec.action.arm_joints, q, world.now(), 0.1))
    gripper.publish(messages.fill_float64_multi_array(world.new_message(spec.action.gripper.type), [0.04]))

world.create_timer(1 / 30, publish_images)
world.create_timer(1 / 100, publish_robot)
recorder = TeleopRecorder(world.sibling("teleop_recorder", {"output_dir": sys.argv[1], "keyboard": False,
                                        "min_free_gb": 0.001, "fsync": False, "status_period_s": 0.0}), spec)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a refused write, not a killed process
resource.setrlimit(resource.RLIMIT_FSIZE, (4 << 20, 4 << 20))
recorder.command("start")
world.run(until=1060.0, stop=lambda: recorder.finished)
code = recorder.close()
print(json.dumps({"code": code, "state": recorder.state, "event": recorder.last_event, "now": world.now()}))
"""


def test_disk_filling_mid_episode_stops_the_recorder_with_a_clear_error(tmp_path: Path) -> None:
    from conftest import ROOT

    from hpt_ros.data import repair_bag

    result = subprocess.run([sys.executable, "-c", FILLING_RECORDER, str(tmp_path)], capture_output=True, text=True,
                            timeout=300, cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    # the recorder stops by itself, well before the 60 s it was given, and says why
    assert outcome["code"] == 1 and outcome["state"] == "error" and outcome["now"] < 1030.0, outcome
    assert "episode 0" in outcome["event"] and "File too large" in outcome["event"], outcome
    # logged as errors, for the operator: the refused write, then the bag that could not be finished
    assert "episode 0: write failed: " in result.stderr and "closing the bag failed" in result.stderr
    # the summary did not fit either: the bag is left for repair, and what reached the disk comes back
    (info,) = list_episodes(tmp_path)
    assert info.needs_repair and not info.complete
    assert repair_bag(info.path).repaired
    with open_bag(info.path) as bag:
        counts = {t: 0 for t in ("/joint_states", "/wrist_camera/color/image_raw")}
        for m in bag.messages():
            if m.topic in counts:
                counts[m.topic] += 1
    assert all(n > 0 for n in counts.values()), counts
