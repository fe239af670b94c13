"""hpt_ros's own checkpoint format (safetensors + YAML), pretrained sources and ``describe``."""

from __future__ import annotations

import logging
import pathlib
import sys
import types

import pytest
from conftest import require_shared
import torch
import yaml
from safetensors.torch import load_file, save_file

from hpt_ros.model import (
    CheckpointError,
    HPTConfig,
    HPTPolicy,
    ImageEncoder,
    PretrainedNotFoundError,
    describe,
    load_checkpoint,
    load_official_model,
    load_official_trunk,
    resolve_pretrained,
    save_checkpoint,
)



def fixtures_dir() -> pathlib.Path:
    return require_shared("hpt_official")


def small_config(**changes) -> HPTConfig:
    base = dict(embed_dim=32, num_blocks=2, num_heads=4, domain="panda", state_dim=8, action_dim=8,
                crossattn_heads=2, crossattn_dim_head=16, head_widths=(64, 32))  # fmt: skip
    base.update(changes)
    return HPTConfig(**base)


def make_policy(encoder: bool = False, seed: int = 0) -> HPTPolicy:
    torch.manual_seed(seed)
    policy = HPTPolicy(small_config(), ImageEncoder(random_init=True) if encoder else None)
    policy.action_normalizer.set_limits([-1.0] * 7 + [0.0], [2.0] * 7 + [0.08])
    policy.state_normalizer.set_limits([-3.0] * 8, [3.0] * 8)
    return policy.eval()


def inputs(batch: int = 3, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(batch, 2, 49, 512, generator=g), torch.randn(batch, 8, generator=g)


EXTRA = {"robot_spec": {"name": "panda", "joints": ["j1", "j2"]}, "spec_sha256": "ab" * 32}


def test_round_trip_gives_identical_outputs(tmp_path):
    policy = make_policy()
    save_checkpoint(tmp_path / "ckpt", policy, extra=EXTRA)
    names = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert names == ["hpt.yaml", "model.safetensors"]
    loaded, meta = load_checkpoint(tmp_path / "ckpt")
    assert loaded.config == policy.config
    assert meta["extra"] == EXTRA and meta["encoder"] is None
    assert meta["trunk_sha256"] == policy.trunk_checksum() == loaded.trunk_checksum()
    assert meta["normalizer"]["action"]["max"][-1] == pytest.approx(0.08)
    features, state = inputs()
    with torch.no_grad():
        expected = policy.forward_features(features, state)
        assert torch.equal(expected, loaded.forward_features(features, state))
    for key, value in policy.state_dict().items():
        assert torch.equal(value, loaded.state_dict()[key]), key


def test_round_trip_of_the_upstream_fixture_model(tmp_path):
    fixtures = fixtures_dir()
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_text((fixtures / "tiny_config.yaml").read_text())
    official = torch.load(fixtures / "tiny_model_state_dict.pt", weights_only=True)
    torch.save(official, run / "model.pth")
    policy = load_official_model(run)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "ckpt", policy))
    features, state = inputs(seed=2)
    with torch.no_grad():
        expected = policy.forward_features(features, state)
        assert torch.equal(expected, loaded.forward_features(features, state))


@pytest.mark.parametrize("folded", [False, True])
def test_round_trip_with_encoder(tmp_path, folded, caplog):
    policy = make_policy(encoder=True)
    if folded:
        policy.encoder = policy.encoder.fold_batchnorm()
    save_checkpoint(tmp_path, policy)
    with caplog.at_level(logging.WARNING, logger="hpt_ros.model"):
        loaded, meta = load_checkpoint(tmp_path)
    assert meta["encoder"]["bn_folded"] is folded and meta["encoder"]["weights_source"] == "random"
    assert any("RANDOM weights" in r.getMessage() for r in caplog.records)  # still random
    images = torch.randint(0, 256, (1, 2, 60, 80, 3), dtype=torch.uint8)
    state = torch.randn(1, 8)
    with torch.no_grad():
        expected = policy(images, state)
        assert torch.equal(expected, loaded(images, state))
        assert torch.equal(expected, policy.forward_features(policy.encode_images(images), state))
    assert expected.shape == (1, 8, 8)


def test_wrong_shape_tensor_is_named(tmp_path):
    save_checkpoint(tmp_path, make_policy())
    weights = load_file(str(tmp_path / "model.safetensors"))
    weights["heads.panda.net.6.weight"] = torch.zeros(8, 32)
    del weights["stems.panda_state.tokens"]
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(tmp_path)
    err = info.value
    assert err.file == tmp_path / "model.safetensors"
    assert err.mismatched == [("heads.panda.net.6.weight", (8, 32), (64, 32))]
    assert err.missing == ["stems.panda_state.tokens"]
    assert "heads.panda.net.6.weight" in str(err)


def test_config_that_does_not_fit_the_weights(tmp_path):
    save_checkpoint(tmp_path, make_policy())
    meta = yaml.safe_load((tmp_path / "hpt.yaml").read_text())
    meta["config"]["action_dim"] = 7
    (tmp_path / "hpt.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(CheckpointError, match="does not fit the config") as info:
        load_checkpoint(tmp_path)
    assert ("heads.panda.net.6.weight", (64, 32), (56, 32)) in info.value.mismatched


def test_bad_metadata_is_explained(tmp_path):
    save_checkpoint(tmp_path, make_policy())
    meta = yaml.safe_load((tmp_path / "hpt.yaml").read_text())
    meta["config"]["colour"] = "red"
    (tmp_path / "hpt.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(CheckpointError, match="unknown HPTConfig keys: colour"):
        load_checkpoint(tmp_path)
    meta["format"] = "something/9"
    (tmp_path / "hpt.yaml").write_text(yaml.safe_dump(meta))
    with pytest.raises(CheckpointError, match="format"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "elsewhere")


def test_tampered_trunk_fails_the_recorded_checksum(tmp_path):
    save_checkpoint(tmp_path, make_policy())
    weights = load_file(str(tmp_path / "model.safetensors"))
    weights["trunk.trunk.blocks.0.norm_1.bias"] += 1.0
    save_file(weights, str(tmp_path / "model.safetensors"))
    with pytest.raises(CheckpointError, match="checksum"):
        load_checkpoint(tmp_path)


def test_extra_must_be_yaml_safe(tmp_path):
    with pytest.raises(ValueError, match="YAML-safe"):
        save_checkpoint(tmp_path, make_policy(), extra={"obj": object()})


def test_no_pickle_in_own_format(tmp_path):
    save_checkpoint(tmp_path, make_policy(encoder=True))
    head = (tmp_path / "model.safetensors").read_bytes()[:8]
    header_len = int.from_bytes(head, "little")
    assert 0 < header_len < 10_000_000  # safetensors header, not a pickle/zip
    assert not (tmp_path / "model.safetensors").read_bytes().startswith(b"PK")


# -- upstream trunk.pth -------------------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_lower_precision_trunk_file_loads_exactly(tmp_path, dtype):
    """A bf16/fp16 trunk.pth into a float32 trunk: every value is kept exactly, so it is the same trunk."""
    source = make_policy(seed=3)
    torch.save({k: v.to(dtype) for k, v in source.trunk.state_dict().items()}, tmp_path / "trunk.pth")
    target = make_policy(seed=4)
    report = load_official_trunk(tmp_path / "trunk.pth", target)
    for key, value in target.trunk.state_dict().items():
        assert value.dtype == torch.float32
        assert torch.equal(value, source.trunk.state_dict()[key].to(dtype).float()), key
    assert report.sha256 == target.trunk_checksum()


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_trunk_that_loading_changes_is_refused(tmp_path, dtype):
    """A float32 trunk.pth into a trunk kept in bf16/fp16: loading rounds the weights, and the
    checksum after loading (not only the key and shape check) refuses the result."""
    source = make_policy(seed=3)
    torch.save(source.trunk.state_dict(), tmp_path / "trunk.pth")
    target = make_policy(seed=4)
    target.trunk.to(dtype)
    refused = "trunk checksum after loading [0-9a-f]{64} differs from the file's"
    with pytest.raises(CheckpointError, match=refused) as info:
        load_official_trunk(tmp_path / "trunk.pth", target)
    assert info.value.file == tmp_path / "trunk.pth"


# -- pretrained sources ---------------------------------------------------------------------


def test_resolve_local_folder(tmp_path):
    assert resolve_pretrained(tmp_path) == tmp_path
    assert resolve_pretrained(str(tmp_path)) == tmp_path


def test_resolve_missing_local_path(tmp_path):
    with pytest.raises(PretrainedNotFoundError, match="no such file"):
        resolve_pretrained(tmp_path / "nope")
    with pytest.raises(PretrainedNotFoundError, match="no such file"):
        resolve_pretrained("./models/nope")


def test_resolve_hub_id_without_huggingface_hub_says_how_to_get_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # what a missing package looks like to import
    with pytest.raises(PretrainedNotFoundError, match="huggingface_hub is not installed") as info:
        resolve_pretrained("hf://liruiw/hpt-base")
    assert "download liruiw/hpt-base and pass its folder" in str(info.value)


def test_resolve_hub_id_downloads_through_snapshot_download(tmp_path, monkeypatch):
    """The hub path with a stand-in ``huggingface_hub`` (the real one is the optional [hub] extra):
    what is asked of it, what comes back, and how a failure reads."""
    calls: list[dict] = []
    folder = tmp_path / "snapshot"

    def snapshot_download(**kwargs):
        calls.append(kwargs)
        if kwargs["repo_id"] == "liruiw/missing":
            raise OSError("Cannot find the requested files in the local cache")
        return str(folder)

    monkeypatch.setitem(sys.modules, "huggingface_hub", types.SimpleNamespace(snapshot_download=snapshot_download))
    assert resolve_pretrained("hf://liruiw/hpt-base", cache_dir=tmp_path / "hub", local_files_only=True) == folder
    assert resolve_pretrained("liruiw/hpt-base") == folder
    assert calls == [dict(repo_id="liruiw/hpt-base", cache_dir=str(tmp_path / "hub"), local_files_only=True),
                     dict(repo_id="liruiw/hpt-base", cache_dir=None, local_files_only=False)]
    refused = "cannot fetch hub repo liruiw/missing .OSError: Cannot find"
    with pytest.raises(PretrainedNotFoundError, match=refused) as info:
        resolve_pretrained("hf://liruiw/missing")
    assert "Offline?" in str(info.value) and "huggingface-cli download liruiw/missing" in str(info.value)


def test_resolve_hub_id_offline_gives_a_clear_error(tmp_path, monkeypatch):
    pytest.importorskip("huggingface_hub", reason="the real client is the optional [hub] extra; "
                        "the stand-in test above covers the hub path without it")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(PretrainedNotFoundError, match="liruiw/hpt-base") as info:
        resolve_pretrained("hf://liruiw/hpt-base", cache_dir=tmp_path, local_files_only=True)
    assert "Offline?" in str(info.value)


# -- describe -------------------------------------------------------------------------------


def test_describe_own_checkpoint(tmp_path):
    policy = make_policy()
    save_checkpoint(tmp_path, policy)
    text = describe(tmp_path)
    print(text)
    assert "hpt_ros checkpoint" in text
    assert f"trunk sha256: {policy.trunk_checksum()}" in text
    assert f"trunk params: {policy.trunk_num_params():,}" in text
    assert "stems.panda_image" in text and "encoder: none" in text


def test_describe_official_folder_and_trunk(tmp_path):
    fixtures = fixtures_dir()
    (tmp_path / "config.yaml").write_text((fixtures / "tiny_config.yaml").read_text())
    official = torch.load(fixtures / "tiny_model_state_dict.pt", weights_only=True)
    torch.save(official, tmp_path / "model.pth")
    torch.save(torch.load(fixtures / "tiny_trunk.pt", weights_only=True), tmp_path / "trunk.pth")
    policy = load_official_model(tmp_path)
    text = describe(tmp_path)
    print(text)
    assert "domains: franka_feed_dog" in text and "heads 4" in text
    assert "trunk params: 100,224" in text and "same weights" in text
    assert policy.trunk_checksum() in text
    trunk_text = describe(fixtures / "tiny_trunk.pt")
    assert "upstream HPT trunk" in trunk_text and policy.trunk_checksum() in trunk_text
    with pytest.raises(CheckpointError, match="not an HPT checkpoint"):
        describe(tmp_path / "empty_dir_that_does_not_exist")


def test_seeded_random_encoder_is_stored_as_its_seed(tmp_path):
    """A seeded random encoder costs a seed in the checkpoint, and comes back bit for bit."""
    from hpt_ros.model import ImageEncoder

    encoder = ImageEncoder(random_init=True, seed=7, image_size=64).round_weights("float16")
    policy = HPTPolicy(small_config(), encoder=encoder).eval()
    save_checkpoint(tmp_path / "seeded", policy)
    size = (tmp_path / "seeded" / "model.safetensors").stat().st_size
    loaded, meta = load_checkpoint(tmp_path / "seeded")
    assert meta["encoder"]["seed"] == 7 and meta["encoder"]["round_dtype"] == "float16"
    assert size < 5_000_000  # no 45 MB of ResNet weights
    for (name, a), (_, b) in zip(policy.state_dict().items(), loaded.state_dict().items()):
        assert torch.equal(a, b), name
    # a changed encoder is no longer its seed: its tensors are stored
    with torch.no_grad():
        encoder.backbone.conv1.weight.add_(1.0)
    save_checkpoint(tmp_path / "changed", policy)
    assert "seed" not in load_checkpoint(tmp_path / "changed")[1]["encoder"]
    # a checksum that does not match the seed's weights is a clear error
    meta_file = tmp_path / "seeded" / "hpt.yaml"
    meta_file.write_text(meta_file.read_text().replace(meta["encoder"]["sha256"], "0" * 64))
    with pytest.raises(CheckpointError, match="seed 7"):
        load_checkpoint(tmp_path / "seeded")
