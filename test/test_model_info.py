"""``hpt-ros model info`` says whether a checkpoint loads strictly, names the keys that stop it, and exits 1."""

from __future__ import annotations

import pytest
from conftest import require_shared
import torch
from safetensors.torch import load_file, save_file

from hpt_ros.cli import main
from hpt_ros.model import HPTConfig, HPTPolicy, save_checkpoint
from hpt_ros.model.info import strict_load_report

RENAMED_FROM = "trunk.trunk.blocks.1.mlp.fc1.weight"
RENAMED_TO = "trunk.trunk.blocks.1.mlp.fc_1.weight"
RESHAPED = "trunk.trunk.blocks.0.norm_2.weight"


@pytest.fixture
def official_run(tmp_path):
    """An upstream run folder (config.yaml + model.pth) from the official fixture; returns (folder, state)."""
    fixtures = require_shared("hpt_official")
    (tmp_path / "config.yaml").write_text((fixtures / "tiny_config.yaml").read_text())
    state = torch.load(fixtures / "tiny_model_state_dict.pt", weights_only=True)
    torch.save(state, tmp_path / "model.pth")
    return tmp_path, state


def run_info(path, capsys) -> tuple[int, str]:
    status = main(["model", "info", str(path)])
    return status, capsys.readouterr().out


def test_intact_upstream_run_loads(official_run, capsys):
    folder, _ = official_run
    status, out = run_info(folder, capsys)
    assert status == 0 and "strict load: OK" in out


def test_renamed_trunk_key_in_model_pth_is_named_and_fails(official_run, capsys):
    folder, state = official_run
    state[RENAMED_TO] = state.pop(RENAMED_FROM)
    torch.save(state, folder / "model.pth")
    status, out = run_info(folder, capsys)
    assert status == 1 and "strict load: FAILS" in out
    assert f"missing key: {RENAMED_FROM}" in out and f"unexpected key: {RENAMED_TO}" in out


def test_wrong_shape_in_model_pth_is_named_and_fails(official_run, capsys):
    folder, state = official_run
    state[RESHAPED] = torch.ones(65)
    torch.save(state, folder / "model.pth")
    status, out = run_info(folder, capsys)
    assert status == 1 and f"wrong shape: {RESHAPED} file (65,), model (64,)" in out
    assert "missing key" not in out and "unexpected key" not in out


def test_trunk_pth_with_a_renamed_key_fails(tmp_path, capsys):
    state = torch.load(require_shared("hpt_official", "tiny_trunk.pt"), weights_only=True)
    assert strict_load_report(require_shared("hpt_official", "tiny_trunk.pt"))[0] is True
    key = "trunk.blocks.0.attn.bias_k"
    state["trunk.blocks.0.attn.bias_key"] = state.pop(key)
    torch.save(state, tmp_path / "trunk.pth")
    status, out = run_info(tmp_path / "trunk.pth", capsys)
    assert status == 1 and f"missing key: {key}" in out and "unexpected key: trunk.blocks.0.attn.bias_key" in out


def test_own_checkpoint_with_a_renamed_key_fails(tmp_path, capsys):
    config = HPTConfig(embed_dim=32, num_blocks=2, num_heads=4, domain="panda", state_dim=8, action_dim=8,
                       crossattn_heads=2, crossattn_dim_head=16, head_widths=(64, 32))
    folder = save_checkpoint(tmp_path / "ckpt", HPTPolicy(config).eval())
    assert run_info(folder, capsys)[0] == 0
    weights = folder / "model.safetensors"
    tensors = load_file(str(weights))
    key = "trunk.trunk.blocks.0.attn.in_proj_weight"
    tensors[key + "_renamed"] = tensors.pop(key)
    save_file(tensors, str(weights))
    status, out = run_info(folder, capsys)
    assert status == 1 and "missing key: trunk.trunk.blocks.0.attn.in_proj_weight" in out
    assert "made for robot spec: not recorded" in out  # built without a spec


def test_info_shows_the_spec_the_model_was_made_for(tmp_path, capsys, franka_spec):
    config = HPTConfig(embed_dim=32, num_blocks=1, num_heads=4, domain="franka_fr3", state_dim=8, action_dim=8,
                       crossattn_heads=2, crossattn_dim_head=16, head_widths=(64, 32))
    folder = save_checkpoint(tmp_path / "ckpt", HPTPolicy(config).eval(), {"spec_hash": "ab" * 32})
    assert "made for robot spec: spec hash abababababababab only" in run_info(folder, capsys)[1]
    folder = save_checkpoint(tmp_path / "with_spec", HPTPolicy(config).eval(), spec=franka_spec)
    out = run_info(folder, capsys)[1]
    assert f"made for robot spec: franka_fr3 (hash {franka_spec.spec_hash[:16]})" in out
    assert "views: 0=wrist_camera, 1=third_person_camera" in out and "state joints: fr3_joint1, fr3_joint2" in out
    assert "action: joint_position x 8" in out and "normaliser source: identity (never set)" in out
