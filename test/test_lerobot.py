"""LeRobotDataset v3.0 export and import, read back with pyarrow and PyAV and checked against the bags.

The bags are written here: joint states at 100 Hz, two cameras at 15 Hz whose frames
carry their own number (four flat bands, two bits each, so a decoded frame tells which
frame it is despite the codec's error) and differ per camera, commands at 15 Hz that
start after the first frame. What the dataset must hold is recomputed from the bags with
the rosbags dataclasses and a latest-at-or-before rule of the test's own (ticks from the
moment every required sensor has a value, a tick with a sensor older than its ``max_age``
is no frame, actions before the first command are the measured joints), not with the
package's reader.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import require_module

from hpt_ros.data import EpisodeWriter, open_bag
from hpt_ros.data.lerobot_export import cli as export_cli
from hpt_ros.data.lerobot_export import export_lerobot
from hpt_ros.data.lerobot_format import LeRobotFormatError
from hpt_ros.data.lerobot_import import import_lerobot
from hpt_ros.msgs import messages
from hpt_ros.msgs.idl import new_message
from hpt_ros.spec import load_spec

av = require_module("av")
pq = require_module("pyarrow.parquet")

SPEC_PATH = Path(__file__).resolve().parents[1] / "config" / "robots" / "franka_fr3.yaml"
WIDTH, HEIGHT = 64, 48
# mean absolute error, 0-255 scale, of RGB -> yuv420p -> codec (crf 30) -> RGB: per frame, and over all frames
FRAME_TOLERANCE, VIDEO_TOLERANCE = 8.0, 3.0
CAMERAS = ("wrist_camera", "third_person_camera")
START_NS = 1_700_000_000_000_000_000
LEVELS = np.array([30, 90, 150, 210])


def numbered_frame(k: int, camera: int, width: int = WIDTH, height: int = HEIGHT) -> np.ndarray:
    """Frame ``k`` of camera ``camera``: red bands carry k (2 bits each), green says the camera."""
    frame = np.empty((height, width, 3), np.uint8)
    step = width // 4
    for band in range(4):
        frame[:, band * step:(band + 1) * step, 0] = LEVELS[(k >> (2 * band)) & 3]
    frame[..., 1] = 60 + 120 * camera
    frame[..., 2] = 255 - frame[..., 0]
    return frame


def frame_number(rgb: np.ndarray) -> tuple[int, int]:
    """(k, camera) read back from a (decoded) ``numbered_frame``."""
    bands = [float(rgb[8:-8, band * 16 + 4:band * 16 + 12, 0].mean()) for band in range(4)]
    k = sum(int(np.abs(LEVELS - v).argmin()) << (2 * band) for band, v in enumerate(bands))
    return k, int(round((float(rgb[..., 1].mean()) - 60) / 120))


def write_episode(path: Path, spec: Any, seed: int, duration_s: float, camera_gap: tuple[float, float] | None = None,
                  omit: tuple[str, ...] = (), resize_at: float | None = None) -> Path:
    """One episode: sinusoidal joints, numbered frames, commands.

    No wrist frames in ``camera_gap``; from ``resize_at`` [s] on, the wrist frames are half the size.
    """
    rng = np.random.default_rng(seed)
    cams, js = spec.image_sensors, spec.state_sensors[0]
    cmd, grip = spec.action.command, spec.action.gripper
    topics = {js.topic: js.type, cmd.topic: cmd.type, grip.topic: grip.type, **{c.topic: c.type for c in cams}}
    for topic in omit:
        topics.pop(topic)
    phase = rng.uniform(0, 6, len(js.joints))
    end = round(duration_s * 1e9)
    events = [(round(k * 1e7), "js", k) for k in range(int(duration_s * 100) + 1)]
    events += [(round(k * 1e9 / 15) + 3_000_000, "cam", k) for k in range(int(duration_s * 15) + 1)]
    events += [(round(k * 1e9 / 15) + 70_000_000, "cmd", k) for k in range(int(duration_s * 15) + 1)]
    with EpisodeWriter(path, topics, {"task": "stack cups", "episode_index": seed}, min_free_bytes=0,
                       flush_interval_s=None, fsync=False) as writer:
        for t, kind, k in sorted(e for e in events if e[0] <= end):
            stamp = (START_NS + t) / 1e9
            msgs = []
            if kind == "js":
                q = 0.3 * np.sin(phase + t / 1e9) + np.linspace(-1.0, 1.0, len(js.joints))
                q[list(js.joints).index(grip.joint)] = 0.02 + 0.01 * np.sin(t / 1e9)
                q[3] = -1.5 + 0.2 * np.sin(t / 1e9)  # inside joint 4's limits
                msgs.append((js.topic, messages.fill_joint_state(new_message(js.type), js.joints, q, stamp_s=stamp)))
            elif kind == "cam":
                for i, sensor in enumerate(cams):
                    if camera_gap and sensor.name == "wrist_camera" and camera_gap[0] <= t / 1e9 < camera_gap[1]:
                        continue
                    small = resize_at is not None and i == 0 and t / 1e9 >= resize_at
                    rgb = numbered_frame(k, i, WIDTH // 2, HEIGHT // 2) if small else numbered_frame(k, i)
                    msgs.append((sensor.topic, messages.numpy_to_image(new_message(sensor.type), rgb, "rgb8",
                                                                       stamp_s=stamp, frame_id=sensor.name)))
            else:
                target = rng.uniform(-1, 1, len(spec.action.arm_joints))
                msgs.append((cmd.topic, messages.fill_joint_trajectory(new_message(cmd.type), spec.action.arm_joints,
                                                                       target, stamp, 1 / 15)))
                msgs.append((grip.topic, messages.fill_float64_multi_array(new_message(grip.type), [0.01 * k])))
            for topic, msg in msgs:
                if topic in topics:
                    writer.write(topic, START_NS + t, msg.serialize())
    return path


def expected_frames(bag: Path, spec: Any) -> dict[str, Any]:
    """States, actions and images of the frames of ``bag``, by the rules in the module docstring."""
    with open_bag(bag) as reader:
        streams: dict[str, list[tuple[int, Any]]] = {}
        for topic, _, t, msg in reader.decoded_messages():
            streams.setdefault(topic, []).append((t, msg))
        end = reader.end_ns
    sensors = {s.name: s for s in spec.sensors}
    t0 = max(streams[s.topic][0][0] for s in spec.sensors if s.required)
    period = 1e9 / spec.rate_hz

    def latest(topic: str, t: int) -> tuple[int, Any] | None:
        items = [item for item in streams.get(topic, []) if item[0] <= t]
        return items[-1] if items else None

    states, actions, images, times = [], [], {c: [] for c in CAMERAS}, []
    k = 0
    while t0 + round(k * period) <= end:
        t = t0 + round(k * period)
        k += 1
        if any((t - latest(s.topic, t)[0]) / 1e9 > s.max_age for s in spec.sensors):
            continue
        js = dict(zip(latest("/joint_states", t)[1].name, latest("/joint_states", t)[1].position))
        state = [js[j] for j in spec.state_joints]
        cmd, grip = latest(spec.action.command.topic, t), latest(spec.action.gripper.topic, t)
        if cmd is None:
            action = [js[j] for j in spec.action.joints]
        else:
            by_name = dict(zip(cmd[1].joint_names, cmd[1].points[-1].positions))
            action = [by_name[j] for j in spec.action.arm_joints] + [float(grip[1].data[0])]
        for camera in CAMERAS:
            img = latest(sensors[camera].topic, t)[1]
            images[camera].append(np.asarray(img.data, np.uint8).reshape(img.height, img.width, 3))
        states.append(state)
        actions.append(action)
        times.append(t)
    return {"state": np.array(states, np.float32), "action": np.array(actions, np.float32),
            "images": {c: np.stack(v) for c, v in images.items()}, "times": times, "ticks": k}


def read_dataset(root: Path) -> dict[str, Any]:
    """Everything of a v3 dataset, with pyarrow and PyAV only."""
    info = json.loads((root / "meta" / "info.json").read_text())
    data = pq.read_table(root / "data" / "chunk-000" / "file-000.parquet")
    episodes = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    videos = {}
    for camera in CAMERAS:
        with av.open(str(root / "videos" / f"observation.images.{camera}" / "chunk-000" / "file-000.mp4")) as c:
            decoded = [(float(f.time), f.to_ndarray(format="rgb24")) for f in c.decode(video=0)]
        videos[camera] = decoded
    columns = {name: data.column(name).to_pylist() for name in data.column_names}
    return {"info": info, "data": columns, "episodes": episodes, "videos": videos,
            "stats": json.loads((root / "meta" / "stats.json").read_text()),
            "tasks": pq.read_table(root / "meta" / "tasks.parquet").to_pylist(), "schema": data.schema}


@pytest.fixture(scope="module")
def spec() -> Any:
    return load_spec(SPEC_PATH)


@pytest.fixture(scope="module")
def recording(spec: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("lerobot") / "recording"
    root.mkdir()
    write_episode(root / "episode_0000", spec, 0, 1.0)
    # a wrist-camera gap from 1.0 to 1.6 s: the ticks the policy node would hold are no frames
    write_episode(root / "episode_0001", spec, 1, 2.0, camera_gap=(1.0, 1.6))
    return root


@pytest.fixture(scope="module")
def exported(spec: Any, recording: Path) -> tuple[Path, dict[str, Any]]:
    out = recording.parent / "dataset"
    return out, export_lerobot([recording], spec, out, progress=False)


def test_export_writes_the_v3_layout_with_the_bags_contents(spec, recording, exported):
    root, summary = exported
    ds = read_dataset(root)
    info = ds["info"]
    expected = [expected_frames(recording / f"episode_{i:04d}", spec) for i in range(2)]
    lengths = [len(e["times"]) for e in expected]
    assert lengths[1] < expected[1]["ticks"]  # the held ticks are left out
    assert summary["episodes"] == 2 and summary["frames"] == sum(lengths) and summary["skipped"] == []

    assert info["codebase_version"] == "v3.0" and info["fps"] == 15.0 and info["robot_type"] == "franka_fr3"
    assert info["data_path"] == "data/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"
    assert info["video_path"] == "videos/{video_key}/chunk-{chunk_index:03d}/file-{file_index:03d}.mp4"
    assert info["splits"] == {"train": "0:2"} and info["total_episodes"] == 2
    assert info["total_frames"] == sum(lengths) and info["total_tasks"] == 1
    features = info["features"]
    assert features["observation.state"] == {"dtype": "float32", "shape": [8], "names": list(spec.state_joints)}
    assert features["action"]["shape"] == [8] and features["action"]["names"] == list(spec.action.joints)
    for camera in CAMERAS:
        video = features[f"observation.images.{camera}"]
        assert video["dtype"] == "video" and video["shape"] == [HEIGHT, WIDTH, 3]
        assert video["info"]["video.codec"] == summary["codec"] in ("av1", "h264")
    for key in ("timestamp", "frame_index", "episode_index", "index", "task_index"):
        assert key in features and key in ds["data"]
    assert str(ds["schema"].field("observation.state").type) == "fixed_size_list<element: float>[8]"
    assert ds["tasks"] == [{"task_index": 0, "task": "stack cups"}]

    data, start = ds["data"], 0
    for e, (exp, row) in enumerate(zip(expected, ds["episodes"])):
        n = len(exp["times"])
        rows = slice(start, start + n)
        assert row["episode_index"] == e and row["length"] == n and row["tasks"] == ["stack cups"]
        assert (row["dataset_from_index"], row["dataset_to_index"]) == (start, start + n)
        assert data["episode_index"][rows] == [e] * n and data["frame_index"][rows] == list(range(n))
        assert data["index"][rows] == list(range(start, start + n)) and data["task_index"][rows] == [0] * n
        assert np.allclose(data["timestamp"][rows], np.arange(n) / 15.0, atol=1e-6)
        assert np.array_equal(np.array(data["observation.state"][rows], np.float32), exp["state"])
        assert np.array_equal(np.array(data["action"][rows], np.float32), exp["action"])
        for camera in CAMERAS:
            key = f"videos/observation.images.{camera}"
            assert row[f"{key}/from_timestamp"] == pytest.approx(start / 15.0)
            assert row[f"{key}/to_timestamp"] == pytest.approx((start + n) / 15.0)
            frames = ds["videos"][camera][start:start + n]
            assert [t for t, _ in frames] == pytest.approx([(start + i) / 15.0 for i in range(n)], abs=1e-3)
            for (_, got), want in zip(frames, exp["images"][camera]):
                assert frame_number(got) == frame_number(want)  # the very frame, of this camera
                assert np.abs(got.astype(float) - want).mean() < FRAME_TOLERANCE
            errors = np.abs(np.stack([f for _, f in frames]).astype(float) - exp["images"][camera])
            assert errors.mean() < VIDEO_TOLERANCE
        assert row["stats/observation.state/count"] == [n]
        assert np.allclose(row["stats/action/mean"], exp["action"].astype(np.float64).mean(0), atol=1e-6)
        start += n
    for camera in CAMERAS:
        assert len(ds["videos"][camera]) == start  # one video per camera, the episodes one after the other

    stats = ds["stats"]
    all_states = np.concatenate([e["state"] for e in expected]).astype(np.float64)
    assert np.allclose(stats["observation.state"]["mean"], all_states.mean(0), atol=1e-6)
    assert np.allclose(stats["observation.state"]["std"], all_states.std(0), atol=1e-6)
    assert stats["observation.state"]["count"] == [start] and stats["index"]["max"] == [start - 1]
    wrist = np.concatenate([e["images"]["wrist_camera"] for e in expected]).astype(np.float64) / 255
    assert np.allclose(np.array(stats["observation.images.wrist_camera"]["mean"]).reshape(3),
                       wrist.reshape(-1, 3).mean(0), atol=1e-9)
    assert np.array(stats["observation.images.wrist_camera"]["std"]).shape == (3, 1, 1)


def test_round_trip_keeps_states_and_actions_exactly(spec, exported, tmp_path):
    root, _ = exported
    ds = read_dataset(root)
    summary = import_lerobot(root, spec, tmp_path / "imported", progress=False)
    assert [Path(p).name for p in summary["episodes"]] == ["episode_0000", "episode_0001"]
    start = 0
    for e, folder in enumerate(summary["episodes"]):
        n = ds["episodes"][e]["length"]
        with open_bag(folder) as reader:
            decoded = list(reader.decoded_messages())
        by_topic: dict[str, list[Any]] = {}
        for topic, _, t, msg in decoded:
            by_topic.setdefault(topic, []).append((t, msg))
        states = np.array([m.position for _, m in by_topic["/joint_states"]])
        commands = np.array([list(m.points[-1].positions) for _, m in by_topic[spec.action.command.topic]])
        grips = np.array([m.data[0] for _, m in by_topic[spec.action.gripper.topic]])
        assert len(states) == len(commands) == n
        assert np.array_equal(states, np.array(ds["data"]["observation.state"][start:start + n], np.float32))
        assert np.array_equal(np.column_stack([commands, grips]),
                              np.array(ds["data"]["action"][start:start + n], np.float32))
        times = [t for t, _ in by_topic["/joint_states"]]
        assert np.array_equal(np.diff(times), np.diff([round(i * 1e9 / 15.0) for i in range(n)]))
        for camera in CAMERAS:
            topic = next(s.topic for s in spec.image_sensors if s.name == camera)
            for (_, img), (_, frame) in zip(by_topic[topic], ds["videos"][camera][start:start + n]):
                assert np.array_equal(np.asarray(img.data, np.uint8).reshape(HEIGHT, WIDTH, 3), frame)
        start += n

    # and back to v3: the same states and actions, bit for bit
    again = export_lerobot([tmp_path / "imported"], spec, tmp_path / "again", progress=False)
    ds2 = read_dataset(tmp_path / "again")
    assert again["frames"] == start and again["skipped"] == []
    for key in ("observation.state", "action", "episode_index", "frame_index", "index"):
        assert ds2["data"][key] == ds["data"][key], key
    for camera in CAMERAS:  # a second encoding of the decoded frames: within the codec's error again
        assert len(ds2["videos"][camera]) == len(ds["videos"][camera])
        for (_, a), (_, b) in zip(ds2["videos"][camera], ds["videos"][camera]):
            assert frame_number(a) == frame_number(b) and np.abs(a.astype(float) - b).mean() < FRAME_TOLERANCE


def test_export_skips_a_bag_without_a_camera_and_refuses_a_used_folder(spec, recording, tmp_path, capsys):
    broken = tmp_path / "broken" / "episode_0000"
    write_episode(broken, spec, 2, 0.5, omit=("/third_person_camera/color/image_raw",))
    out = tmp_path / "dataset"
    status = export_cli([str(broken), str(recording / "episode_0000"), "--robot", str(SPEC_PATH), "--out", str(out),
                         "--encoder", "libx264", "--no-progress"])
    assert status == 1  # one skipped, the other exported
    printed = capsys.readouterr().out
    assert f"skipped {broken}" in printed and "/third_person_camera/color/image_raw" in printed
    info = json.loads((out / "meta" / "info.json").read_text())
    assert info["total_episodes"] == 1 and info["features"]["observation.images.wrist_camera"]["info"][
        "video.codec"] == "h264"
    with av.open(str(out / "videos" / "observation.images.wrist_camera" / "chunk-000" / "file-000.mp4")) as c:
        assert c.streams.video[0].codec_context.name == "h264"
        assert sum(1 for _ in c.decode(video=0)) == info["total_frames"]
    assert not (tmp_path / "dataset.partial").exists()
    with pytest.raises(FileExistsError, match="not empty"):
        export_lerobot([recording], spec, out, progress=False)
    assert export_cli([str(broken), "--robot", str(SPEC_PATH), "--out", str(tmp_path / "none"), "--no-progress"]) == 2
    assert not (tmp_path / "none").exists() and not (tmp_path / "none.partial").exists()


def test_files_roll_over_and_an_episode_failing_half_way_is_left_out(spec, recording, exported, tmp_path,
                                                                      monkeypatch):
    from hpt_ros.data import lerobot_export, read_episode_yaml
    from hpt_ros.data.episodes import write_episode_yaml

    monkeypatch.setattr(lerobot_export, "VIDEO_FILE_SIZE_MB", 1e-6)  # every episode fills its files
    monkeypatch.setattr(lerobot_export, "DATA_FILE_SIZE_MB", 1e-6)
    mixed = tmp_path / "recording"
    mixed.mkdir()
    shutil.copytree(recording / "episode_0000", mixed / "episode_0000")
    write_episode(mixed / "episode_0001", spec, 1, 1.0, resize_at=0.5)  # the wrist camera changes size half-way
    shutil.copytree(recording / "episode_0001", mixed / "episode_0002")
    doc = read_episode_yaml(mixed / "episode_0002")
    write_episode_yaml(mixed / "episode_0002", {**doc, "episode_index": 2})  # episodes go in index order
    summary = export_lerobot([mixed], spec, tmp_path / "dataset", progress=False)
    assert summary["episodes"] == 2 and [p for p, _ in summary["skipped"]] == [str(mixed / "episode_0001")]
    assert "camera wrist_camera frames are" in summary["skipped"][0][1]
    root = tmp_path / "dataset"
    rows = pq.read_table(root / "meta" / "episodes" / "chunk-000" / "file-000.parquet").to_pylist()
    wrist = "videos/observation.images.wrist_camera"
    assert [(r["data/file_index"], r[f"{wrist}/file_index"]) for r in rows] == [(0, 0), (1, 1)]
    assert rows[1][f"{wrist}/from_timestamp"] > 0  # after the frames the failed episode left in the file
    assert sorted(p.name for p in (root / "data" / "chunk-000").iterdir()) == ["file-000.parquet", "file-001.parquet"]
    assert json.loads((root / "meta" / "info.json").read_text())["video_files_size_in_mb"] == 1e-6

    # read back, it holds what the one-file dataset of the same two episodes holds
    split = import_lerobot(root, spec, tmp_path / "from_split", progress=False)["episodes"]
    whole = import_lerobot(exported[0], spec, tmp_path / "from_whole", progress=False)["episodes"]
    for a, b in zip(split, whole, strict=True):
        with open_bag(a) as ra, open_bag(b) as rb:
            got, want = list(ra.decoded_messages()), list(rb.decoded_messages())
        assert [(topic, t) for topic, _, t, _ in got] == [(topic, t) for topic, _, t, _ in want]
        for (topic, _, _, m), (_, _, _, w) in zip(got, want):
            if topic == "/joint_states":
                assert np.array_equal(m.position, w.position)
            elif topic == spec.action.command.topic:
                assert np.array_equal(m.points[-1].positions, w.points[-1].positions)
            elif topic != spec.action.gripper.topic:
                image = np.asarray(m.data, np.uint8).reshape(HEIGHT, WIDTH, 3)
                assert frame_number(image) == frame_number(np.asarray(w.data, np.uint8).reshape(HEIGHT, WIDTH, 3))


def test_import_names_the_key_that_does_not_fit_the_spec(spec, exported, tmp_path):
    root, _ = exported
    bad = tmp_path / "bad"
    shutil.copytree(root, bad)
    info_file = bad / "meta" / "info.json"
    info = json.loads(info_file.read_text())
    info["features"]["observation.state"]["names"][0] = "shoulder_pan"
    info_file.write_text(json.dumps(info))
    with pytest.raises(LeRobotFormatError, match=r"'observation.state': names \['shoulder_pan'") as exc:
        import_lerobot(bad, spec, tmp_path / "out", progress=False)
    assert str(info_file) in str(exc.value)
    info["features"]["observation.state"]["names"][0] = spec.state_joints[0]
    info["features"]["observation.images.laptop"] = info["features"].pop("observation.images.wrist_camera")
    info_file.write_text(json.dumps(info))
    with pytest.raises(LeRobotFormatError, match=r"'observation.images.wrist_camera': missing.*laptop.*--camera"):
        import_lerobot(bad, spec, tmp_path / "out", progress=False)
    info["codebase_version"] = "v2.1"
    info_file.write_text(json.dumps(info))
    with pytest.raises(LeRobotFormatError, match="'codebase_version': is v2.1"):
        import_lerobot(bad, spec, tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()  # nothing written


def test_hpt_ros_dispatcher_reaches_both_commands(capsys):
    from hpt_ros.cli import main

    for command, option in (("export-lerobot", "--robot"), ("import-lerobot", "--camera")):
        with pytest.raises(SystemExit) as exc:
            main([command, "--help"])
        assert exc.value.code == 0 and option in capsys.readouterr().out


def test_imported_episodes_are_training_and_evaluation_input(spec, exported, tmp_path):
    import torch

    from hpt_ros.data import select_episodes
    from hpt_ros.engine.factory import build_policy_for_spec
    from hpt_ros.evaluate.api import evaluate_bags
    from hpt_ros.model import save_checkpoint

    root, _ = exported
    folders = import_lerobot(root, spec, tmp_path / "imported", progress=False)["episodes"]
    used, skipped = select_episodes(tmp_path / "imported")  # what hpt-ros train picks up
    assert [str(i.path) for i in used] == folders and skipped == []
    assert [i.task for i in used] == ["stack cups", "stack cups"]
    torch.manual_seed(0)
    checkpoint = save_checkpoint(tmp_path / "model", build_policy_for_spec(spec, "tiny", random_vision=True),
                                 {"robot": spec.name, "note": "random init (test)"})
    metrics = evaluate_bags(folders[:1], spec, checkpoint, tmp_path / "eval", threads=1, plots=False,
                            progress=False)
    entry = metrics["episodes"][folders[0]]
    assert entry["status"] == "ok" and entry["dimensions_scored"] == list(spec.action.joints)
    assert entry["ticks_evaluated"] == entry["ticks"] > 10


def test_end_effector_actions_are_written_as_the_training_reader_reads_them():
    from hpt_ros.data.dataset import _quaternion_to_rpy
    from hpt_ros.data.lerobot_import import _rpy_to_quaternion

    for rpy in ([0.1, -0.2, 0.3], [3.0, 1.2, -2.5], [0.0, 0.0, 0.0], [-1.0, -1.4, 3.1]):
        assert np.allclose(_quaternion_to_rpy(*_rpy_to_quaternion(*rpy)), rpy, atol=1e-12)
