"""Replay evaluation on bags recorded from the simulator, checked against an independent computation.

The bags are written here with ``EpisodeWriter`` from the simulated Franka (``FeedDogSim``
physics, ``SceneRenderer`` frames of 128x96, JointState at 100 Hz, ``FeedDogExpert``
commands at 15 Hz, every message serialised with the package's IDL structs), and the policy is a
tiny random-init checkpoint. The test then recomputes what the evaluation must report
without the replay machinery: it reads the bag with the ``rosbags`` dataclasses, builds
each tick's observation with its own latest-at-or-before logic, runs the engine, applies
ACT temporal ensembling and the safety clamp by formula, and computes the metrics.
"""

from __future__ import annotations

import json
import math
import shutil
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hpt_ros.data import EpisodeWriter, open_bag
from hpt_ros.evaluate.api import evaluate_bags
from hpt_ros.evaluate.cli import _strip_ros_args, build_arg_parser, cli
from hpt_ros.msgs import messages
from hpt_ros.msgs.idl import new_message
from hpt_ros.sim import FeedDogExpert, FeedDogSim, SceneRenderer
from hpt_ros.spec import load_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC_PATH = ROOT / "config" / "robots" / "franka_fr3.yaml"
START_NS = 1_700_000_000_000_000_000
DURATION_S = 3.5
GAP = ("wrist_camera", 1.0, 1.6)  # no wrist frames in [1.0, 1.6) s: longer than its max_age of 0.2 s


# -- bags from the simulator ----------------------------------------------------------------------

def write_sim_episode(path: Path, spec: Any, *, episode: int = 0, duration_s: float = DURATION_S,
                      width: int = 128, height: int = 96, camera_rate: float = 15.0,
                      camera_gap: tuple[str, float, float] | None = None,
                      omit: tuple[str, ...] = (), retype: dict[str, str] | None = None,
                      enable: list[tuple[float, bool]] | None = None) -> Path:
    """One teleoperated episode of the simulated Franka as a rosbag2 (mcap) bag.

    ``omit``: topics left out; ``retype``: topics written as another type (Float64MultiArray);
    ``enable``: (time, value) messages on the spec's enable topic.
    """
    sim = FeedDogSim(seed=0, episode=episode)
    renderer = SceneRenderer(sim.model, width, height)
    cams, js = spec.image_sensors, spec.state_sensors[0]
    cmd, grip = spec.action.command, spec.action.gripper
    action_names = list(spec.action.arm_joints) + [grip.joint]
    teleop = FeedDogExpert(*spec.joint_limits_arrays(action_names), rate_hz=spec.rate_hz, rng=episode)
    topics = {js.topic: js.type, cmd.topic: cmd.type, grip.topic: grip.type, **{c.topic: c.type for c in cams}}
    if enable is not None:
        topics[spec.safety.enable_topic] = "std_msgs/msg/Bool"
    topics.update(retype or {})
    for topic in omit:
        topics.pop(topic)
    end = round(duration_s * 1e9)
    events = [(round(k * 1e9 / 100.0), 0, "js") for k in range(int(duration_s * 100) + 1)]
    events += [(round(k * 1e9 / camera_rate) + 3_000_000, 1, "cam") for k in range(int(duration_s * camera_rate) + 1)]
    events += [(round(k * 1e9 / spec.rate_hz) + 7_000_000, 2, "cmd") for k in range(int(duration_s * spec.rate_hz) + 1)]
    events += [(round(t * 1e9), 3, ("enable", v)) for t, v in enable or []]
    events = sorted(e for e in events if e[0] <= end)
    last = 0
    with EpisodeWriter(path, topics, {"task": "feed_dog", "episode_index": episode}, min_free_bytes=0,
                       flush_interval_s=None, fsync=False) as writer:
        def write(topic: str, t: int, msg: Any) -> None:
            if topic not in topics:
                return
            if topic in (retype or {}):
                msg = messages.fill_float64_multi_array(new_message(topics[topic]), [1.0, 2.0])
            writer.write(topic, START_NS + t, msg.serialize())

        for t, _, kind in events:
            sim.step((t - last) / 1e9)
            last = t
            stamp = (START_NS + t) / 1e9
            if kind == "js":
                m = messages.fill_joint_state(new_message("sensor_msgs/msg/JointState"), list(sim.joint_names()),
                                              sim.joint_positions(), velocities=sim.joint_velocities(), stamp_s=stamp)
                write(js.topic, t, m)
            elif kind == "cam":
                for sensor, rgb in zip(cams, renderer.render(*sim.snapshot())):
                    if camera_gap and sensor.name == camera_gap[0] and camera_gap[1] <= t / 1e9 < camera_gap[2]:
                        continue
                    write(sensor.topic, t, messages.numpy_to_image(new_message("sensor_msgs/msg/Image"), rgb, "rgb8",
                                                                   stamp_s=stamp, frame_id=sensor.name))
            elif kind == "cmd":
                target = teleop.next_target(sim.joint_positions()[:8], sim.treat_position(), sim.layout.bowl_xy)
                sim.set_targets(action_names, target)
                write(cmd.topic, t, messages.fill_joint_trajectory(new_message(cmd.type), spec.action.arm_joints,
                                                                   target[:7], stamp, spec.period_s))
                write(grip.topic, t, messages.fill_float64_multi_array(new_message(grip.type), [target[7]]))
            else:
                msg = new_message("std_msgs/msg/Bool")
                msg.data = bool(kind[1])
                write(spec.safety.enable_topic, t, msg)
    return path


# -- the independent computation ------------------------------------------------------------------

def expected_episode(bag: Path, spec: Any, engine: Any, replan_every: int | None = None) -> dict[str, Any]:
    """Ticks, hold reasons, commands and recorded actions of ``bag``, computed without the replay.

    Chunks are executed by ACT temporal ensembling, or with ``replan_every`` by re-planning.
    """
    with open_bag(bag) as reader:
        start, end = reader.start_ns, reader.end_ns
        streams: dict[str, list[tuple[int, Any]]] = defaultdict(list)
        for topic, _, t, msg in reader.decoded_messages():  # rosbags dataclasses, not the IDL codec
            streams[topic].append((t, msg))
    period_ns = round(1e9 / spec.rate_hz)
    ticks = [start + k * period_ns for k in range(1, (end - start) // period_ns + 1)]

    def latest(topic: str, t: int) -> tuple[int, Any] | None:
        before = [item for item in streams[topic] if item[0] <= t]
        return before[-1] if before else None

    action = spec.action
    lower, upper, velocity = spec.joint_limits_arrays(action.joints)
    max_step = spec.safety.max_velocity_fraction * velocity * (1.0 / spec.rate_hz)
    m, horizon = spec.execution.ensemble_coefficient, action.horizon
    chunks: dict[int, np.ndarray] = {}
    active, last_command = False, None
    reasons, predicted, recorded = [], [], []
    for k, t in enumerate(ticks):
        # recorded action: latest command and gripper value at or before t
        cmd, grip = latest(action.command.topic, t), latest(action.gripper.topic, t)
        if cmd is None or grip is None:
            recorded.append(None)
        else:
            msg = cmd[1]
            positions = dict(zip(msg.joint_names, msg.points[-1].positions))
            recorded.append(np.array([positions[j] for j in action.arm_joints] + [float(grip[1].data[0])]))
        # observation: latest message per sensor, its age against max_age
        reason, images, state = "", [], []
        for sensor in spec.sensors:
            item = latest(sensor.topic, t)
            if item is None:
                reason = f"missing {sensor.name}"
                break
            if abs(t / 1e9 - item[0] / 1e9) > sensor.max_age:
                reason = f"stale {sensor.name}"
                break
        if reason:
            reasons.append(reason)
            predicted.append(None)
            active = False
            continue
        for sensor in spec.image_sensors:
            img = latest(sensor.topic, t)[1]
            images.append(np.asarray(img.data, dtype=np.uint8).reshape(img.height, img.width, 3))
        for sensor in spec.state_sensors:
            js = latest(sensor.topic, t)[1]
            by_name = dict(zip(js.name, js.position))
            state += [by_name[j] for j in sensor.joints]
        state32 = np.array(state, dtype=np.float32)
        if not active:
            chunks.clear()  # (re)activation: only fresh chunks
        if replan_every is None:
            chunks[k] = engine.predict(np.stack(images)[None], state32[None])[0].astype(np.float64)
            starts = sorted(s for s in chunks if s <= k < s + horizon)
            weights = np.exp(-m * np.arange(len(starts), dtype=np.float64))
            ensembled = (weights / weights.sum()) @ np.stack([chunks[s][k - s] for s in starts])
        else:
            if not chunks or k - max(chunks) >= replan_every:
                chunks.clear()
                chunks[k] = engine.predict(np.stack(images)[None], state32[None])[0].astype(np.float64)
            start = max(chunks)
            ensembled = chunks[start][k - start]
        measured = state32.astype(np.float64)[[list(spec.state_joints).index(j) for j in action.joints]]
        reference = last_command if active else measured
        command = np.clip(reference + np.clip(ensembled - reference, -max_step, max_step), lower, upper)
        last_command, active = command, True
        reasons.append("")
        predicted.append(command)
    return {"ticks": ticks, "reasons": reasons, "predicted": predicted, "recorded": recorded,
            "lower": lower, "upper": upper}


def expected_metrics(episodes: list[dict[str, Any]], joints: tuple[str, ...]) -> dict[str, Any]:
    errors = np.array([p - r for e in episodes for p, r in zip(e["predicted"], e["recorded"])
                       if p is not None and r is not None]).reshape(-1, len(joints))
    span = episodes[0]["upper"] - episodes[0]["lower"]
    normalised = 2 * errors / span
    return {
        "ticks_evaluated": errors.shape[0],
        "mae": dict(zip(joints, np.abs(errors).mean(0))),
        "rmse": dict(zip(joints, np.sqrt((errors**2).mean(0)))),
        "max_abs_error": dict(zip(joints, np.abs(errors).max(0))),
        "mae_normalized": dict(zip(joints, np.abs(normalised).mean(0))),
        "rmse_normalized": dict(zip(joints, np.sqrt((normalised**2).mean(0)))),
        "max_abs_error_normalized": dict(zip(joints, np.abs(normalised).max(0))),
        "mae_normalized_overall": np.abs(normalised).mean(),
        "rmse_normalized_overall": np.sqrt((normalised**2).mean()),
        "max_abs_error_normalized_overall": np.abs(normalised).max(),
        "held_reasons": dict(Counter(r for e in episodes for r in e["reasons"] if r)),
    }


def assert_metrics_match(found: dict[str, Any], expected: dict[str, Any]) -> None:
    assert found["ticks_evaluated"] == expected["ticks_evaluated"]
    assert found["held_reasons"] == expected["held_reasons"]
    for key, value in expected.items():
        if key in ("ticks_evaluated", "held_reasons"):
            continue
        if isinstance(value, dict):
            assert list(found[key]) == list(value), key
            for joint, v in value.items():
                assert found[key][joint] == pytest.approx(v, abs=1e-6, rel=0), (key, joint)
        else:
            assert found[key] == pytest.approx(value, abs=1e-6, rel=0), key


def without_timing(metrics: Any) -> Any:
    if isinstance(metrics, dict):
        return {k: without_timing(v) for k, v in metrics.items()
                if k not in ("timing", "plot", "plots", "video", "video_frames")}
    if isinstance(metrics, list):
        return [without_timing(v) for v in metrics]
    return metrics


# -- fixtures ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def spec() -> Any:
    return load_spec(SPEC_PATH)


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("eval")


@pytest.fixture(scope="module")
def bags(spec: Any, work: Path) -> dict[str, Path]:
    return {
        "plain": write_sim_episode(work / "episode_0000", spec, episode=0),
        "gap": write_sim_episode(work / "episode_0001", spec, episode=1, camera_gap=GAP),
    }


@pytest.fixture(scope="module")
def checkpoint(spec: Any, work: Path) -> Path:
    import torch

    from hpt_ros.engine.factory import build_policy_for_spec
    from hpt_ros.model import save_checkpoint

    torch.manual_seed(7)
    policy = build_policy_for_spec(spec, "tiny", random_vision=True)
    return save_checkpoint(work / "model", policy, {"robot": spec.name, "note": "random init (test)"})


@pytest.fixture(scope="module")
def engine(spec: Any, checkpoint: Path) -> Any:
    import torch

    from hpt_ros.engine.factory import load_engine

    threads = torch.get_num_threads()
    yield load_engine(checkpoint, spec, threads=1)  # one thread: fast and steady beside other test processes
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def evaluation(spec: Any, bags: dict[str, Path], checkpoint: Path, engine: Any, work: Path) -> dict[str, Any]:
    return evaluate_bags([bags["plain"], bags["gap"]], spec, checkpoint, work / "out", engine=engine,
                         progress=False)


@pytest.fixture(scope="module")
def expected(spec: Any, bags: dict[str, Path], engine: Any) -> dict[str, dict[str, Any]]:
    return {name: expected_episode(bag, spec, engine) for name, bag in bags.items()}


# -- (a) the numbers, recomputed independently -------------------------------------------------------

def test_metrics_equal_an_independent_computation(evaluation, expected, bags, spec):
    joints = spec.action.joints
    for name, bag in bags.items():
        entry = evaluation["episodes"][str(bag)]
        assert entry["status"] == "ok", entry
        exp = expected[name]
        assert entry["ticks"] == len(exp["ticks"]) == 52  # 3.5 s at 15 Hz: ticks at start + k / 15, k = 1..52
        assert entry["ticks_held"] == sum(1 for r in exp["reasons"] if r)
        assert_metrics_match(entry, expected_metrics([exp], joints))
    overall = evaluation["overall"]
    assert overall["episodes_evaluated"] == 2 and overall["episodes_failed"] == 0
    assert_metrics_match(overall, expected_metrics(list(expected.values()), joints))


def test_outputs_a_person_reads(evaluation, work):
    out = work / "out"
    on_disk = json.loads((out / "metrics.json").read_text())
    assert on_disk == evaluation
    report = (out / "report.md").read_text()
    assert "| episodes | failed |" in report and "episode_0001" in report and "stale wrist_camera" in report
    for plot in [evaluation["plots"]["error_summary"]] + [e["plot"] for e in evaluation["episodes"].values()]:
        assert (out / plot).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"]({plot})" in report
    timing = evaluation["overall"]["timing"]
    assert timing["speed_x_realtime"] > 0 and timing["bag_duration_s"] == pytest.approx(7.0, abs=0.01)
    assert set(timing["breakdown_s"]) >= {"inference", "bag_read", "cdr_decode", "sensor_callbacks"}
    assert evaluation["setup"]["alignment"].startswith("The recorded action at a control tick is the latest")


def decoded_frames(path: Path) -> list[np.ndarray]:
    import av

    with av.open(str(path)) as container:
        return [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]


def test_every_episode_has_a_video_of_cameras_and_actions_linked_from_the_report(evaluation, work, bags):
    out = work / "out"
    report = (out / "report.md").read_text()
    assert "## Videos" in report
    for bag in bags.values():
        entry = evaluation["episodes"][str(bag)]
        video = entry["video"]
        assert video == f"videos/{entry['name']}.mp4" and f"]({video})" in report
        frames = decoded_frames(out / video)
        assert len(frames) == entry["ticks"] == entry["video_frames"] == 52  # one frame per control tick
        height, width = frames[0].shape[:2]
        assert width >= 640 and height > 320  # the cameras' row (320 px) above the action plot
        camera_row, plot = frames[0][:320], frames[0][320:]
        assert camera_row[:, 20:].std() > 10  # a rendered scene, not a black tile
        assert (plot > 240).mean() > 0.5  # a mostly white plot area
        # the cursor moves: the plot part differs between the first and the last frame
        assert np.abs(frames[-1][320:].astype(int) - plot.astype(int)).max() > 100


def test_no_videos_flag_skips_them(spec, bags, checkpoint, engine, work):
    metrics = evaluate_bags([bags["plain"]], spec, checkpoint, work / "out_no_videos", engine=engine,
                            progress=False, plots=False, videos=False)
    assert "video" not in metrics["episodes"][str(bags["plain"])]
    assert not (work / "out_no_videos" / "videos").exists()
    assert "## Videos" not in (work / "out_no_videos" / "report.md").read_text()
    assert build_arg_parser().parse_args(["--bags", "b", "--robot", "r", "--out", "o", "--no-videos"]).no_videos


# -- (b) a camera gap is held, not scored -----------------------------------------------------------------

def test_camera_gap_counts_as_held_ticks(evaluation, expected, bags, spec):
    entry = evaluation["episodes"][str(bags["gap"])]
    exp = expected["gap"]
    stale = [t for t, r in zip(exp["ticks"], exp["reasons"]) if r]
    # the ticks held are exactly those more than max_age after the last wrist frame before the gap
    wrist = next(s for s in spec.sensors if s.name == "wrist_camera")
    with open_bag(bags["gap"]) as reader:
        frames = [m.timestamp_ns for m in reader.messages([wrist.topic])]
    before = max(t for t in frames if t < START_NS + GAP[1] * 1e9)
    after = min(t for t in frames if t >= START_NS + GAP[2] * 1e9)
    assert stale == [t for t in exp["ticks"] if (t - before) / 1e9 > wrist.max_age and t < after]
    assert entry["held_reasons"] == {"stale wrist_camera": len(stale)} and len(stale) >= 5
    assert entry["ticks_evaluated"] + entry["ticks_held"] + entry["ticks_without_recorded_action"] == entry["ticks"]
    assert evaluation["episodes"][str(bags["plain"])]["held_reasons"] == {}
    assert entry["info"]["hold_events"] == 1


# -- (c) determinism ----------------------------------------------------------------------------------------

def test_two_runs_give_identical_numbers(evaluation, spec, bags, checkpoint, work):
    bag = str(bags["gap"])  # the bag with a hold: executor resets and reactivation included
    again = evaluate_bags([bag], spec, checkpoint, work / "out_again", threads=1, plots=False,
                          progress=False)  # its own engine, loaded from the checkpoint
    first, second = without_timing(evaluation["episodes"][bag]), without_timing(again["episodes"][bag])
    assert json.dumps(second, sort_keys=True) == json.dumps(first, sort_keys=True)
    assert without_timing(again["setup"]) == without_timing(evaluation["setup"])


# -- (d) broken bags fail alone, with errors naming bag and topic --------------------------------------------

def test_broken_bags_fail_clearly_and_the_others_are_evaluated(spec, bags, checkpoint, work, evaluation, capsys):
    broken = work / "broken"
    broken.mkdir()
    missing = write_sim_episode(broken / "missing_camera", spec, duration_s=0.5,
                                omit=("/third_person_camera/color/image_raw",))
    wrong = write_sim_episode(broken / "wrong_type", spec, duration_s=0.5,
                              retype={"/joint_states": "std_msgs/msg/Float64MultiArray"})
    truncated = broken / "truncated"
    shutil.copytree(bags["plain"], truncated)
    mcap = next(truncated.glob("*.mcap"))
    mcap.write_bytes(mcap.read_bytes()[: mcap.stat().st_size // 2])
    out = work / "out_broken"
    status = cli(["--bags", str(missing), str(wrong), str(truncated), str(bags["plain"]), "--robot", str(SPEC_PATH),
                  "--model", str(checkpoint), "--out", str(out), "--no-plots", "--no-progress", "--threads", "1"])
    assert status == 1  # a bag failed; the rest was evaluated
    metrics = json.loads((out / "metrics.json").read_text())
    episodes = metrics["episodes"]
    e = episodes[str(missing)]
    assert e["status"] == "error" and e["topic"] == "/third_person_camera/color/image_raw"
    assert str(missing) in e["error"] and "/third_person_camera/color/image_raw" in e["error"]
    assert "not in the bag" in e["error"]
    e = episodes[str(wrong)]
    assert e["status"] == "error" and e["topic"] == "/joint_states" and str(wrong) in e["error"]
    assert "expected type sensor_msgs/msg/JointState, found std_msgs/msg/Float64MultiArray" in e["error"]
    e = episodes[str(truncated)]
    assert e["status"] == "error" and e["error_type"] == "BagTruncatedError"
    assert str(truncated) in e["error"] and mcap.name in e["error"] and "recover" in e["error"]
    good = episodes[str(bags["plain"])]
    assert good["status"] == "ok"
    assert without_timing(good) == without_timing(evaluation["episodes"][str(bags["plain"])])
    assert metrics["overall"]["episodes_evaluated"] == 1 and metrics["overall"]["episodes_failed"] == 3
    printed = capsys.readouterr().out
    assert f"FAILED {missing}" in printed and "replay speed:" in printed
    report = (out / "report.md").read_text()
    assert "Bags that could not be evaluated" in report and str(wrong) in report

    # --recover evaluates the complete messages of the truncated bag
    recovered = evaluate_bags([truncated], spec, checkpoint, work / "out_recover", threads=1, recover=True,
                              plots=False, progress=False)["episodes"][str(truncated)]
    assert recovered["status"] == "ok" and recovered["info"]["recovered"] is True
    assert 0 < recovered["ticks"] < good["ticks"]


# -- storage formats: bare .mcap, sqlite3 (metadata v9, Jazzy definitions) -------------------------------------

def test_bare_mcap_and_sqlite3_bags_give_the_same_numbers(spec, bags, engine, work, evaluation):
    from rosbags.rosbag2 import StoragePlugin, Writer

    from hpt_ros.data import distro_typestore

    source = bags["gap"]
    bare = next(source.glob("*.mcap"))
    sqlite = work / "episode_0001_sqlite3"
    store = distro_typestore("jazzy")
    with open_bag(source) as reader, Writer(sqlite, version=9, storage_plugin=StoragePlugin.SQLITE3) as writer:
        connections = {topic: writer.add_connection(topic, info.msgtype, typestore=store)
                       for topic, info in reader.topics.items()}
        for topic, _, t, raw in reader.messages():
            writer.write(connections[topic], t, bytes(raw))
    metrics = evaluate_bags([bare, sqlite], spec, "tiny-engine", work / "out_formats", engine=engine, plots=False,
                            videos=False, progress=False)
    reference = without_timing(evaluation["episodes"][str(source)])
    for bag, storage in ((bare, "mcap"), (sqlite, "sqlite3")):
        entry = without_timing(metrics["episodes"][str(bag)])
        assert entry.pop("info")["storage"] == storage
        for key in ("bag", "name", "info"):
            entry.pop(key, None)
        assert entry == {k: v for k, v in reference.items() if k not in ("bag", "name", "info")}


# -- re-planning instead of ensembling, chosen on the command line --------------------------------------------

def test_replan_execution_from_the_command_line(spec, bags, checkpoint, engine, work):
    out = work / "out_replan"
    status = cli(["--bags", str(bags["gap"]), "--robot", str(SPEC_PATH), "--model", str(checkpoint), "--out", str(out),
                  "--execution", "replan", "--replan-every", "4", "--sync", "--no-plots", "--no-progress",
                  "--threads", "1"])
    assert status == 0
    metrics = json.loads((out / "metrics.json").read_text())
    # the reference below is the synchronous replan (asynchronous replanning blends overlapping chunks)
    assert metrics["setup"]["execution"] == "replan (every 4)"
    entry = metrics["episodes"][str(bags["gap"])]
    assert entry["timing"]["inferences"] < 20  # a chunk every 4 ticks (and after the hold), not every tick
    assert_metrics_match(entry, expected_metrics([expected_episode(bags["gap"], spec, engine, replan_every=4)],
                                                 spec.action.joints))


# -- enable gating from the bag ---------------------------------------------------------------------------------

def test_enable_topic_in_the_bag_gates_motion(spec, checkpoint, engine, work):
    bag = write_sim_episode(work / "enable_episode", spec, duration_s=2.0,
                            enable=[(0.0, True), (0.81, False), (1.41, True)])
    gated = evaluate_bags([bag], spec, checkpoint, work / "out_enable", engine=engine, plots=False, progress=False)
    entry = gated["episodes"][str(bag)]
    assert entry["info"]["enable_from_bag"] is True
    # disabled from 0.81 s to 1.41 s: the ticks at k / 15 s for k = 13..21
    assert entry["held_reasons"] == {"disabled": 9}
    ignored = evaluate_bags([bag], spec, checkpoint, work / "out_enable_ignored", engine=engine, plots=False,
                            progress=False, enable_from_bag=False)["episodes"][str(bag)]
    assert ignored["held_reasons"] == {} and ignored["ticks_evaluated"] == entry["ticks"]


# -- a leader arm as the action source ----------------------------------------------------------------------------

def test_leader_arm_joint_states_as_action_source(spec, bags, engine):
    # The measured joint states as "leader arm": the recorded action is the latest JointState at or before each tick.
    from hpt_ros.evaluate.episode import replay_episode

    bag = bags["plain"]
    result = replay_episode(bag, spec, engine, action_topic="/joint_states")
    with open_bag(bag) as reader:
        states = [(t, dict(zip(m.name, m.position))) for _, _, t, m in reader.decoded_messages(["/joint_states"])]
    assert len(result.tick_ns) == 52 and result.evaluated.all()
    for k, t in enumerate(result.tick_ns):
        latest = [s for s in states if s[0] <= t][-1][1]
        assert np.array_equal(result.recorded[k], [latest[j] for j in spec.action.joints])
    with pytest.raises(ValueError, match="action_joint_names has 2 names"):
        replay_episode(bag, spec, engine, action_topic="/joint_states", action_joint_names=["a", "b"])


# -- the command line ---------------------------------------------------------------------------------------------

def test_command_line_arguments():
    args = build_arg_parser("replay_eval").parse_args(
        ["--bags", "a", "b", "--robot", "r.yaml", "--model", "m", "--out", "o", "--precision", "bf16"])
    assert args.bags == ["a", "b"] and args.precision == "bf16" and args.robot == "r.yaml"
    assert _strip_ros_args(["--bags", "a", "--ros-args", "-p", "x:=1", "--", "--out", "o"]) == ["--bags", "a",
                                                                                                "--out", "o"]
    with pytest.raises(SystemExit) as exc:
        build_arg_parser().parse_args(["--robot", "r"])  # --bags and --out are required
    assert exc.value.code == 2


def test_command_line_fails_whole_run_on_a_bad_model(tmp_path, capsys, bags):
    status = cli(["--bags", str(bags["plain"]), "--robot", str(SPEC_PATH), "--model", str(tmp_path / "nope"),
                  "--out", str(tmp_path / "out"), "--no-progress"])
    assert status == 2 and "no such model" in capsys.readouterr().err


def test_hpt_ros_dispatcher_reaches_eval(capsys):
    from hpt_ros.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["eval", "--help"])
    assert exc.value.code == 0 and "--bags" in capsys.readouterr().out


def test_math_helpers():
    from hpt_ros.evaluate.actions import quaternion_to_rpy
    from hpt_ros.nodes.policy_node import _rpy_to_quaternion

    for rpy in ([0.1, -0.2, 0.3], [math.pi - 0.01, 0.4, -2.0], [0.0, 0.0, 0.0]):
        assert np.allclose(quaternion_to_rpy(*_rpy_to_quaternion(np.array(rpy))), rpy, atol=1e-12)


# -- part of the action missing: scored on what the bag records ----------------------------------------------

def test_bag_without_the_gripper_topic_is_scored_on_the_arm(spec, checkpoint, engine, work):
    gripper = spec.action.gripper
    arm = list(spec.action.arm_joints)
    full = write_sim_episode(work / "partial" / "with_gripper", spec, episode=2, duration_s=1.2)
    partial = write_sim_episode(work / "partial" / "without_gripper", spec, episode=2, duration_s=1.2,
                                omit=(gripper.topic,))
    out = work / "out_partial"
    metrics = evaluate_bags([full, partial], spec, checkpoint, out, engine=engine, progress=False)
    got, ref = metrics["episodes"][str(partial)], metrics["episodes"][str(full)]
    assert got["status"] == "ok", got
    assert got["dimensions_scored"] == arm and ref["dimensions_scored"] == list(spec.action.joints)
    assert list(got["dimensions_not_scored"]) == [gripper.joint] and ref["dimensions_not_scored"] == {}
    assert gripper.topic in got["dimensions_not_scored"][gripper.joint]
    assert "not in the bag" in got["dimensions_not_scored"][gripper.joint]

    # the same episode with the gripper, checked against the independent computation, gives the arm's numbers
    exp = expected_episode(full, spec, engine)
    assert_metrics_match(ref, expected_metrics([exp], spec.action.joints))
    assert got["ticks_evaluated"] == ref["ticks_evaluated"] > 10
    for key in ("mae", "rmse", "max_abs_error", "mae_normalized", "rmse_normalized", "max_abs_error_normalized"):
        assert got[key][gripper.joint] is None, key
        for joint in arm:
            assert got[key][joint] == pytest.approx(ref[key][joint], abs=1e-12), (key, joint)
    errors = np.array([p - r for p, r in zip(exp["predicted"], exp["recorded"]) if p is not None and r is not None])
    span = exp["upper"] - exp["lower"]
    arm_only = 2 * errors[:, :7] / span[:7]
    assert got["mae_normalized_overall"] == pytest.approx(np.abs(arm_only).mean(), abs=1e-9)

    # overall: the arm pools both episodes, the gripper only the one that records it
    overall = metrics["overall"]
    n = ref["ticks_evaluated"]
    assert overall["ticks_evaluated_per_dimension"] == {**dict.fromkeys(arm, 2 * n), gripper.joint: n}
    assert overall["dimensions_scored"] == list(spec.action.joints) and overall["dimensions_not_scored"] == {}
    assert overall["episodes_missing_dimensions"] == {got["name"]: got["dimensions_not_scored"]}
    pooled = np.concatenate([(2 * errors / span).reshape(-1), arm_only.reshape(-1)])
    assert overall["mae_normalized_overall"] == pytest.approx(np.abs(pooled).mean(), abs=1e-9)
    assert overall["mae_normalized"][gripper.joint] == pytest.approx(ref["mae_normalized"][gripper.joint], abs=1e-12)

    assert json.loads((out / "metrics.json").read_text()) == metrics
    report = (out / "report.md").read_text()
    assert "## Action dimensions scored" in report and f"| `{got['name']}` | `{gripper.joint}` |" in report
    assert gripper.topic in report

    # only the gripper missing from every episode: the dimension is listed as never scored, with the reason
    alone = evaluate_bags([partial], spec, checkpoint, work / "out_partial_alone", engine=engine, plots=False,
                          progress=False)["overall"]
    assert alone["dimensions_scored"] == arm and list(alone["dimensions_not_scored"]) == [gripper.joint]
    assert gripper.topic in alone["dimensions_not_scored"][gripper.joint]
    assert alone["mae"][gripper.joint] is None and alone["ticks_evaluated_per_dimension"][gripper.joint] == 0


def test_bag_with_none_of_the_action_is_an_error_naming_bag_and_topics(spec, checkpoint, engine, work):
    command, gripper = spec.action.command.topic, spec.action.gripper.topic
    bag = write_sim_episode(work / "partial" / "no_action", spec, duration_s=0.5, omit=(command, gripper))
    wrong = write_sim_episode(work / "partial" / "command_wrong_type", spec, duration_s=0.5,
                              retype={command: "std_msgs/msg/Float64MultiArray"})
    metrics = evaluate_bags([bag, wrong], spec, checkpoint, work / "out_no_action", engine=engine, plots=False,
                            progress=False)
    entry = metrics["episodes"][str(bag)]
    assert entry["status"] == "error" and entry["error_type"] == "EvaluationError"
    assert entry["topics"] == [command, gripper] and entry["topic"] == command
    assert str(bag) in entry["error"] and command in entry["error"] and gripper in entry["error"]
    assert "none of the recorded action" in entry["error"]
    # a command topic of another type is there but unreadable: an error, not dimensions left out
    entry = metrics["episodes"][str(wrong)]
    assert entry["status"] == "error" and entry["topic"] == command
    assert f"expected type {spec.action.command.type}, found std_msgs/msg/Float64MultiArray" in entry["error"]
    assert metrics["overall"]["episodes_evaluated"] == 0
