"""Robot spec loading and validation: the shipped specs load; each mistake names file, key, expected, found."""

from __future__ import annotations

import copy
import subprocess
import sys

import pytest
import yaml

from hpt_ros.spec import SpecError, load_spec, parse_spec

from conftest import ROOT

SHIPPED = sorted((ROOT / "config" / "robots").glob("*.yaml"))


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_specs_load(path):
    spec = load_spec(path)
    assert spec.rate_hz > 0
    assert spec.state_dim == sum(len(s.joints) for s in spec.state_sensors)
    assert spec.num_views == next(s.views for s in spec.stems if s.modality == "image")


def test_franka_fr3_layout(franka_spec_path):
    spec = load_spec(franka_spec_path)
    assert spec.state_joints == tuple(f"fr3_joint{i}" for i in range(1, 8)) + ("fr3_finger_joint1",)
    assert spec.action.dim == 8 and spec.action.horizon == 8
    assert spec.action.arm_joints == tuple(f"fr3_joint{i}" for i in range(1, 8))
    assert [s.name for s in spec.image_sensors] == ["wrist_camera", "third_person_camera"]
    lower, upper, velocity = spec.joint_limits_arrays(spec.action.joints)
    assert (lower < upper).all() and (velocity > 0).all()
    # FR3 datasheet: joint 4 is always negative, joint 6 always positive
    assert upper[3] < 0 and lower[5] > 0


def test_spec_hash_ignores_formatting(franka_spec_path):
    data = yaml.safe_load(franka_spec_path.read_text())
    a = parse_spec(copy.deepcopy(data), "a.yaml")
    b = parse_spec(copy.deepcopy(data), "b.yaml")
    assert a.spec_hash == b.spec_hash
    data["robot"]["rate_hz"] = 30.0
    assert parse_spec(data, "c.yaml").spec_hash != a.spec_hash


def _mutated(franka_spec_path, mutate):
    data = yaml.safe_load(franka_spec_path.read_text())
    mutate(data)
    return data


CASES = {
    "unknown key": (lambda d: d["robot"].update(rate=10), "robot.rate", "unknown key"),
    "unknown top-level key": (lambda d: d.update(sensorz={}), "sensorz", "unknown key"),
    "sensor mapped to no stem": (
        lambda d: d["sensors"]["wrist_camera"].update(stem="camera"), "sensors.wrist_camera.stem", "'camera'"),
    "stem with no sensor": (
        lambda d: [d["sensors"].pop("joint_states")], "stems.state", "no sensor"),
    "joint listed twice": (
        lambda d: d["sensors"]["joint_states"]["joints"].__setitem__(1, "fr3_joint1"),
        "sensors.joint_states.joints[1]", "fr3_joint1 listed twice"),
    "limits inverted": (
        lambda d: d["limits"]["fr3_joint2"].update(lower=1.0, upper=-1.0), "limits.fr3_joint2.upper", "-1.0"),
    "rate zero": (lambda d: d["robot"].update(rate_hz=0), "robot.rate_hz", "0"),
    "rate negative": (lambda d: d["robot"].update(rate_hz=-5), "robot.rate_hz", "-5"),
    "image size": (lambda d: d["stems"]["image"].update(image_size=100), "stems.image.image_size", "100"),
    "bad topic": (lambda d: d["sensors"]["wrist_camera"].update(topic="wrist cam"), "sensors.wrist_camera.topic",
                  "wrist cam"),
    "wrong message type for stem": (
        lambda d: d["sensors"]["wrist_camera"].update(type="sensor_msgs/msg/JointState"),
        "sensors.wrist_camera.type", "JointState"),
    "missing limits": (lambda d: d["limits"].pop("fr3_joint7"), "limits.fr3_joint7", "<missing>"),
    "view gap": (lambda d: d["sensors"]["third_person_camera"].update(view=2), "view", "[0, 2]"),
    "state dim mismatch": (lambda d: d["stems"]["state"].update(dim=7), "stems.state.dim", "7"),
    "max_age missing": (lambda d: d["sensors"]["joint_states"].pop("max_age"), "sensors.joint_states.max_age",
                        "<missing>"),
    "replan beyond horizon": (lambda d: d["execution"].update(replan_every=9), "execution.replan_every", "9"),
    "bad engine": (lambda d: d["engine"].update(backend="tensorflow"), "engine.backend", "tensorflow"),
    "gripper joint not in action": (
        lambda d: d["action"]["gripper"].update(joint="fr3_finger_joint2"), "action.gripper.joint",
        "fr3_finger_joint2"),
    "string where number": (lambda d: d["robot"].update(rate_hz="fast"), "robot.rate_hz", "fast"),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_spec_errors_name_file_key_expected_found(case, franka_spec_path):
    mutate, key_path, found = CASES[case]
    data = _mutated(franka_spec_path, mutate)
    with pytest.raises(SpecError) as info:
        parse_spec(data, "robot.yaml")
    message = str(info.value)
    assert message.startswith("robot.yaml: "), message
    assert key_path in message, message
    assert "expected" in message and found in message, message


def test_malformed_yaml_names_line(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("robot:\n  name: x\n  rate_hz: [1, 2\n")
    with pytest.raises(SpecError) as info:
        load_spec(bad)
    assert str(bad) in str(info.value) and "line" in str(info.value)


def test_yaml_is_safe_loaded(tmp_path):
    bad = tmp_path / "evil.yaml"
    bad.write_text("robot: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(SpecError):
        load_spec(bad)


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(SpecError, match="no such file"):
        load_spec(tmp_path / "nope.yaml")


def test_cli_spec_check_prints_the_same(tmp_path, franka_spec_path):
    ok = subprocess.run([sys.executable, "-m", "hpt_ros.cli", "spec", "check", str(franka_spec_path)],
                        capture_output=True, text=True, cwd=ROOT)
    assert ok.returncode == 0, ok.stderr
    assert "franka_fr3" in ok.stdout and "ok" in ok.stdout
    data = _mutated(franka_spec_path, lambda d: d["limits"]["fr3_joint2"].update(lower=1.0, upper=-1.0))
    bad = tmp_path / "inverted.yaml"
    bad.write_text(yaml.safe_dump(data))
    res = subprocess.run([sys.executable, "-m", "hpt_ros.cli", "spec", "check", str(bad)],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 1
    assert f"{bad}: limits.fr3_joint2.upper: expected a limit above lower (1.0), found -1.0" in res.stderr
