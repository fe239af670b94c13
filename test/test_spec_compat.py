"""A model records the robot spec fields it was made for; loading under a spec that differs is refused."""

from __future__ import annotations

import copy
import logging

import pytest
import torch
import yaml

from hpt_ros.engine import load_engine
from hpt_ros.engine.factory import SpecMismatchError, build_policy_for_spec
from hpt_ros.model import ImageEncoder, load_checkpoint, save_checkpoint
from hpt_ros.spec import parse_spec
from hpt_ros.spec.compat import compare_model_fields, model_fields

JOINTS = [f"fr3_joint{i}" for i in range(1, 8)] + ["fr3_finger_joint1"]


def variant(spec, change):
    """``spec`` re-parsed after ``change(raw)`` edited a copy of its YAML mapping."""
    raw = copy.deepcopy(spec.raw)
    change(raw)
    return parse_spec(raw, f"<{change.__name__}>")


def swap_cameras(raw):
    raw["sensors"]["wrist_camera"]["view"], raw["sensors"]["third_person_camera"]["view"] = 1, 0


def reorder_state_joints(raw):
    joints = raw["sensors"]["joint_states"]["joints"]
    joints[0], joints[1] = joints[1], joints[0]


def reorder_action_joints(raw):
    joints = raw["action"]["joints"]
    joints[2], joints[3] = joints[3], joints[2]


def rename_topics(raw):
    raw["sensors"]["wrist_camera"]["topic"] = "/hand_camera/image"
    raw["sensors"]["joint_states"]["topic"] = "/franka/joint_states"
    raw["action"]["command"]["topic"] = "/arm/joint_trajectory"


def rename_robot(raw):
    raw["robot"]["name"] = "lab_arm_2"


def read_velocities(raw):
    raw["sensors"]["joint_states"]["field"] = "velocity"


@pytest.fixture(scope="module")
def policy(franka_spec):
    logging.getLogger("hpt_ros.model").setLevel(logging.ERROR)  # the random-weights warning
    torch.manual_seed(0)
    built = build_policy_for_spec(franka_spec, size="tiny")
    built.encoder = ImageEncoder(random_init=True, seed=0)  # stored as its seed: a small checkpoint
    return built


@pytest.fixture
def checkpoint(policy, franka_spec, tmp_path):
    return save_checkpoint(tmp_path / "ckpt", policy, spec=franka_spec)


def test_same_spec_has_no_differences(franka_spec):
    result = compare_model_fields(model_fields(franka_spec), franka_spec)
    assert result.compatible and result.same_hash and result.notes == ()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (swap_cameras, ["view 0 sensor: model 'wrist_camera', spec 'third_person_camera'",
                        "view 1 sensor: model 'third_person_camera', spec 'wrist_camera'"]),
        (reorder_state_joints, ["state joints in another order: model ['fr3_joint1', 'fr3_joint2'"]),
        (reorder_action_joints, ["action joints in another order"]),
        (read_velocities, ["state fields read: model ['position'], spec ['velocity']"]),
    ],
)
def test_each_meaningful_difference_is_listed(franka_spec, change, named):
    result = compare_model_fields(model_fields(franka_spec), variant(franka_spec, change))
    assert len(result.differences) == len(named) and not result.compatible and result.notes == ()
    for difference, text in zip(result.differences, named):
        assert difference.startswith(text)


def test_missing_joint_and_other_action_kind_are_listed(franka_spec):
    recorded = model_fields(franka_spec)
    recorded["state"][0]["joints"] = JOINTS[:7] + ["fr3_finger_joint2"]
    recorded["action"].update(kind="ee_pose", dim=7, frame="fr3_link0")
    differences = "\n".join(compare_model_fields(recorded, franka_spec).differences)
    assert "spec lacks ['fr3_finger_joint2']" in differences and "model lacks ['fr3_finger_joint1']" in differences
    assert "action kind: model 'ee_pose', spec 'joint_position'" in differences
    assert "action dim: model 7, spec 8" in differences and "action frame: model 'fr3_link0', spec None" in differences


def test_topic_and_robot_renames_are_notes(franka_spec):
    renamed = variant(variant(franka_spec, rename_topics), rename_robot)
    result = compare_model_fields(model_fields(franka_spec), renamed)
    assert result.compatible and not result.same_hash
    notes = "\n".join(result.notes)
    assert "view 0 topic renamed: /wrist_camera/color/image_raw -> /hand_camera/image" in notes
    assert "state sensor joint_states topic renamed: /joint_states -> /franka/joint_states" in notes
    assert "command topic renamed" in notes and "'lab_arm_2'" in notes


def test_checkpoint_records_the_fields_and_the_normaliser_source(checkpoint, franka_spec):
    meta = yaml.safe_load((checkpoint / "hpt.yaml").read_text())
    assert meta["robot_spec"] == model_fields(franka_spec)
    assert meta["robot_spec"]["spec_hash"] == franka_spec.spec_hash
    assert meta["normalizer"]["source"] == "joint limits of robot spec 'franka_fr3'"
    policy, _ = load_checkpoint(checkpoint)
    assert policy.spec_fields == meta["robot_spec"] and policy.normalizer_source == meta["normalizer"]["source"]


def test_a_built_policy_carries_its_fields_into_a_checkpoint_saved_without_spec(policy, franka_spec, tmp_path):
    folder = save_checkpoint(tmp_path / "plain", policy)
    assert yaml.safe_load((folder / "hpt.yaml").read_text())["robot_spec"] == model_fields(franka_spec)


def test_loading_under_a_spec_with_swapped_cameras_is_refused(checkpoint, franka_spec):
    with pytest.raises(SpecMismatchError) as info:
        load_engine(checkpoint, variant(franka_spec, swap_cameras), backend="torch", mode="eager")
    message = str(info.value)
    assert str(checkpoint / "hpt.yaml") in message and "<swap_cameras>" in message
    assert "view 0 sensor: model 'wrist_camera', spec 'third_person_camera'" in message
    assert "view 1 sensor" in message and "allow_spec_mismatch" in message


def test_override_loads_and_warns_on_every_load(checkpoint, franka_spec, caplog):
    other = variant(franka_spec, reorder_state_joints)
    with caplog.at_level(logging.WARNING, logger="hpt_ros.engine"):
        for _ in range(2):
            engine = load_engine(checkpoint, other, backend="torch", mode="eager", allow_spec_mismatch=True)
            assert engine.backend == "torch"
    warnings = [r.getMessage() for r in caplog.records if "SPEC MISMATCH ALLOWED" in r.getMessage()]
    assert len(warnings) == 2 and all("state joints in another order" in w for w in warnings)
    assert engine.spec_comparison.differences[0].startswith("state joints in another order")  # for /diagnostics


def test_topic_rename_loads_with_a_note(checkpoint, franka_spec, caplog):
    with caplog.at_level(logging.INFO, logger="hpt_ros.engine"):
        load_engine(checkpoint, variant(franka_spec, rename_topics), backend="torch", mode="eager")
    messages = [r.getMessage() for r in caplog.records]
    assert any("view 0 topic renamed" in m and r.levelno == logging.INFO for m, r in zip(messages, caplog.records))
    assert not any(r.levelno >= logging.WARNING for r in caplog.records)


def test_checkpoint_without_fields_loads_with_a_warning(checkpoint, franka_spec, caplog):
    meta_file = checkpoint / "hpt.yaml"
    meta = yaml.safe_load(meta_file.read_text())
    del meta["robot_spec"]
    meta["extra"] = {"spec_hash": "0" * 64}  # what older trainers recorded
    meta_file.write_text(yaml.safe_dump(meta, sort_keys=False))
    with caplog.at_level(logging.WARNING, logger="hpt_ros.engine"):
        load_engine(checkpoint, variant(franka_spec, swap_cameras), backend="torch", mode="eager")
    warning = next(r.getMessage() for r in caplog.records if "records no robot spec fields" in r.getMessage())
    assert "cannot be checked" in warning and "000000000000" in warning

    caplog.clear()
    meta["extra"] = {"spec_hash": franka_spec.spec_hash}  # same hash: nothing left to check, nothing to say
    meta_file.write_text(yaml.safe_dump(meta, sort_keys=False))
    with caplog.at_level(logging.WARNING, logger="hpt_ros.engine"):
        load_engine(checkpoint, franka_spec, backend="torch", mode="eager")
    assert not [r for r in caplog.records if "records no robot spec fields" in r.getMessage()]


def test_policy_cli_has_the_override_flag():
    from hpt_ros.nodes.policy_node import build_arg_parser

    assert build_arg_parser().parse_args(["--allow-spec-mismatch"]).allow_spec_mismatch is True
    assert build_arg_parser().parse_args([]).allow_spec_mismatch is False
