"""The HPT trunk: strict trunk.pth loading with a verified checksum, and the key/shape
layout of every published size (small, base, large, xlarge) from the fixtures manifest.

Large sizes are built on the ``meta`` device: names, shapes and parameter counts need no
memory, and ``load_state_dict`` of meta tensors still runs the strict key check.
"""

from __future__ import annotations

import json
import pathlib

import pytest
from conftest import require_shared
import torch

from hpt_ros.model import (
    BLOCK_KEY_ORDER,
    TRUNK_SIZES,
    CheckpointError,
    HPTConfig,
    HPTPolicy,
    Trunk,
    load_official_trunk,
    trunk_sha256,
)



def fixtures_dir() -> pathlib.Path:
    return require_shared("hpt_official")


@pytest.fixture(scope="module")
def fixtures() -> pathlib.Path:
    return fixtures_dir()


@pytest.fixture(scope="module")
def manifest(fixtures) -> dict:
    return json.loads((fixtures / "trunk_key_manifest.json").read_text())


@pytest.fixture()
def tiny_trunk_state(fixtures) -> dict:
    return dict(torch.load(fixtures / "tiny_trunk.pt", map_location="cpu", weights_only=True))


def tiny_policy() -> HPTPolicy:
    return HPTPolicy(HPTConfig(embed_dim=64, num_blocks=2, num_heads=4, state_dim=8, action_dim=8))


def test_tiny_trunk_loads_strictly_and_checksums_agree(fixtures, tiny_trunk_state):
    policy = tiny_policy()
    before = policy.trunk_checksum()
    report = load_official_trunk(fixtures / "tiny_trunk.pt", policy)
    assert report.file == fixtures / "tiny_trunk.pt"
    assert report.num_keys == 28
    assert report.num_params == 100_224 == policy.trunk_num_params()
    assert report.sha256 == policy.trunk_checksum() == trunk_sha256(tiny_trunk_state)
    assert report.sha256 != before
    for key, value in tiny_trunk_state.items():
        assert torch.equal(policy.trunk.state_dict()[key], value)


def test_trunk_loads_from_a_folder_into_a_bare_trunk(tmp_path, tiny_trunk_state):
    torch.save(tiny_trunk_state, tmp_path / "trunk.pth")
    trunk = Trunk(64, 2, 4)
    report = load_official_trunk(tmp_path, trunk)
    assert report.file == tmp_path / "trunk.pth"
    assert report.sha256 == trunk_sha256(trunk.state_dict())


def test_checksum_ignores_dict_order_but_not_values(tiny_trunk_state):
    reordered = dict(reversed(list(tiny_trunk_state.items())))
    assert trunk_sha256(reordered) == trunk_sha256(tiny_trunk_state)
    changed = dict(tiny_trunk_state)
    changed["trunk.blocks.1.norm_2.bias"] = changed["trunk.blocks.1.norm_2.bias"] + 1e-3
    assert trunk_sha256(changed) != trunk_sha256(tiny_trunk_state)


def _tampered(tmp_path, state, how):
    state = dict(state)
    if how == "renamed":
        state["trunk.blocks.0.mlp.fc9.weight"] = state.pop("trunk.blocks.0.mlp.fc1.weight")
    elif how == "wrong_shape":
        state["trunk.blocks.1.attn.bias_k"] = torch.zeros(1, 1, 32)
    elif how == "extra":
        state["trunk.norm.weight"] = torch.ones(64)
    file = tmp_path / f"{how}.pth"
    torch.save(state, file)
    return file


def test_renamed_key_is_listed(tmp_path, tiny_trunk_state):
    file = _tampered(tmp_path, tiny_trunk_state, "renamed")
    with pytest.raises(CheckpointError) as info:
        load_official_trunk(file, Trunk(64, 2, 4))
    assert info.value.file == file
    assert info.value.missing == ["trunk.blocks.0.mlp.fc1.weight"]
    assert info.value.unexpected == ["trunk.blocks.0.mlp.fc9.weight"]
    assert str(file) in str(info.value) and "fc9" in str(info.value)


def test_wrong_shape_is_listed_with_shapes(tmp_path, tiny_trunk_state):
    file = _tampered(tmp_path, tiny_trunk_state, "wrong_shape")
    with pytest.raises(CheckpointError) as info:
        load_official_trunk(file, Trunk(64, 2, 4))
    assert info.value.mismatched == [("trunk.blocks.1.attn.bias_k", (1, 1, 32), (1, 1, 64))]
    assert "(1, 1, 32)" in str(info.value)


def test_extra_key_is_listed(tmp_path, tiny_trunk_state):
    file = _tampered(tmp_path, tiny_trunk_state, "extra")
    with pytest.raises(CheckpointError) as info:
        load_official_trunk(file, Trunk(64, 2, 4))
    assert info.value.unexpected == ["trunk.norm.weight"] and not info.value.missing


def test_tiny_trunk_into_small_trunk_fails_clearly(fixtures):
    with torch.device("meta"):
        trunk = Trunk(*TRUNK_SIZES["small"])
    with pytest.raises(CheckpointError) as info:
        load_official_trunk(fixtures / "tiny_trunk.pt", trunk)
    assert len(info.value.missing) == 14 * 14  # blocks 2..15
    assert ("trunk.blocks.0.mlp.fc1.weight", (256, 64), (512, 128)) in info.value.mismatched


def test_not_a_state_dict_is_rejected(tmp_path):
    torch.save([torch.zeros(1)], tmp_path / "trunk.pth")
    with pytest.raises(CheckpointError, match="dict of tensors"):
        load_official_trunk(tmp_path / "trunk.pth", Trunk(64, 2, 4))
    with pytest.raises(CheckpointError, match="not found"):
        load_official_trunk(tmp_path / "missing.pth", Trunk(64, 2, 4))


def test_batch_first_attention_equals_sequence_first(tiny_trunk_state):
    # Upstream runs nn.MultiheadAttention on [L, B, D]; ours is batch_first.
    trunk = Trunk(64, 2, 4)
    trunk.load_state_dict(tiny_trunk_state)
    ours = trunk.trunk.blocks[0].attn
    theirs = torch.nn.MultiheadAttention(64, 4, add_bias_kv=True)
    theirs.load_state_dict(ours.state_dict())
    x = torch.randn(3, 32, 64)
    with torch.no_grad():
        a = ours(x, x, x, need_weights=False)[0]
        b = theirs(*(x.transpose(0, 1),) * 3, need_weights=False)[0].transpose(0, 1)
    assert torch.equal(a, b)


@pytest.mark.parametrize("size", ["small", "base", "large", "xlarge", "tiny_fixture"])
def test_trunk_layout_matches_manifest(manifest, size):
    entry = manifest[size]
    dims = (entry["embed_dim"], entry["num_blocks"], entry["num_heads"])
    if size in TRUNK_SIZES:
        assert TRUNK_SIZES[size] == dims
    with torch.device("meta"):
        trunk = Trunk(*dims)
    ours = [(k, list(v.shape)) for k, v in trunk.state_dict().items()]
    assert ours == [(k, list(shape)) for k, shape in entry["keys"]]
    assert trunk.num_params() == entry["total_params"]
    # strict load of a state dict with the manifest's shapes (meta tensors: no memory)
    state = {k: torch.empty(shape, device="meta") for k, shape in entry["keys"]}
    trunk.load_state_dict(state, strict=True)


@pytest.mark.parametrize(
    ("size", "total"),
    [("small", 3_176_448), ("base", 12_644_352), ("large", 50_454_528), ("xlarge", 226_861_056)],
)
def test_policy_trunk_param_counts(manifest, size, total):
    assert manifest[size]["total_params"] == total
    with torch.device("meta"):
        policy = HPTPolicy(HPTConfig.from_size(size, state_dim=8, action_dim=8))
    assert policy.trunk_num_params() == total
    assert policy.param_counts()["trunk"] == total
    keys = policy.trunk.state_dict(prefix="trunk.")
    assert all(k.startswith("trunk.trunk.blocks.") for k in keys)


def test_zero_filled_small_trunk_file_loads(tmp_path, manifest):
    entry = manifest["small"]
    torch.save({k: torch.zeros(shape) for k, shape in entry["keys"]}, tmp_path / "trunk.pth")
    policy = HPTPolicy(HPTConfig.from_size("small", state_dim=8, action_dim=8))
    report = load_official_trunk(tmp_path, policy)
    assert report.num_params == entry["total_params"]
    assert all(float(v.abs().sum()) == 0 for v in policy.trunk.state_dict().values())


def test_block_key_order_constant_matches_manifest(manifest):
    names = [k.split(".", 3)[3] for k, _ in manifest["small"]["keys"][:14]]
    assert tuple(names) == BLOCK_KEY_ORDER


class _Payload:
    """Stands for arbitrary pickled code; weights_only loading must refuse it."""


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"trunk.blocks.0.attn.bias_k": _Payload()}, tmp_path / "trunk.pth")
    with pytest.raises(CheckpointError, match="weights_only=True"):
        load_official_trunk(tmp_path, Trunk(64, 2, 4))
