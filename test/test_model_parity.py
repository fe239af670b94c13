"""Numerical parity of HPTPolicy with upstream HPT, stage by stage (tiny fixture model).

The upstream ``config.yaml`` + ``model.pth`` (written to a temporary folder from the
fixtures) go through ``load_official_model``; each stage is compared with ``tiny_io.npz``
at atol 1e-5. Max abs errors reached on the development machine (torch 2.13 CPU):

    posemb_image_table / posemb_state_table / posemb_trunk_table   0 (bit-identical)
    state_normalized, stem_input_state                             0
    stem_mlp_out_image (batch item 0)                              2.0e-06
    stem_mlp_out_state                                             2.1e-07
    stem_tokens_image                                              6.6e-07
    stem_tokens_state                                              1.9e-07
    trunk_input                                                    6.0e-07
    trunk_block0_out                                               1.2e-06
    trunk_output                                                   1.7e-06
    pooled_feature                                                 4.8e-07
    head_output_normalized_action                                  7.7e-07
    action_unnormalized                                            2.3e-06

(The fixtures README puts upstream's own float32-vs-float64 noise at up to 2.1e-6.)
"""

from __future__ import annotations

import pathlib

import numpy as np
import pytest
from conftest import require_shared
import torch
import torch.nn.functional as F
import yaml

from hpt_ros.model import (
    CheckpointError,
    HPTConfig,
    HPTPolicy,
    load_checkpoint,
    load_official_model,
    save_checkpoint,
    sinusoid_table,
)

ATOL = 1e-5


def fixtures_dir() -> pathlib.Path:
    return require_shared("hpt_official")


def write_official_dir(folder: pathlib.Path, state: dict, fixtures: pathlib.Path) -> pathlib.Path:
    """An upstream-style run folder: config.yaml + model.pth."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.yaml").write_text((fixtures / "tiny_config.yaml").read_text())
    torch.save(dict(state), folder / "model.pth")
    return folder


@pytest.fixture(scope="module")
def fixtures() -> pathlib.Path:
    return fixtures_dir()


@pytest.fixture(scope="module")
def io(fixtures):
    return dict(np.load(fixtures / "tiny_io.npz"))


@pytest.fixture(scope="module")
def official_state(fixtures):
    return torch.load(fixtures / "tiny_model_state_dict.pt", map_location="cpu", weights_only=True)


@pytest.fixture(scope="module")
def official_dir(tmp_path_factory, fixtures, official_state):
    return write_official_dir(tmp_path_factory.mktemp("official") / "run", official_state, fixtures)


@pytest.fixture(scope="module")
def policy(official_dir):
    return load_official_model(official_dir)


@pytest.fixture(scope="module")
def stages(policy, io):
    with torch.no_grad():
        return policy.forward_stages(
            torch.from_numpy(io["input_image_features"][:, 0]),
            torch.from_numpy(io["input_state_raw"][:, 0]),
        )


def max_err(actual: torch.Tensor, expected: np.ndarray) -> float:
    return float(np.abs(actual.detach().numpy().reshape(expected.shape) - expected).max())


@pytest.mark.parametrize(
    ("name", "rows", "dim"), [("image", 98, 512), ("state", 1, 8), ("trunk", 32, 64)]
)
def test_position_tables_are_bit_identical(io, name, rows, dim):
    table = sinusoid_table(rows, dim)
    assert table.dtype == torch.float32
    err = max_err(table, io[f"posemb_{name}_table"])
    print(f"posemb_{name}_table max abs err {err:.3g}")
    assert err == 0.0


def test_policy_uses_the_same_tables(policy, io):
    np.testing.assert_array_equal(policy.image_stem.posemb.numpy(), io["posemb_image_table"])
    np.testing.assert_array_equal(policy.state_stem.posemb.numpy(), io["posemb_state_table"])
    np.testing.assert_array_equal(policy.trunk_posemb.numpy(), io["posemb_trunk_table"])


STAGES = [
    ("state_normalized", "state_normalized"),
    ("stem_input_state", "stem_input_state"),
    ("stem_mlp_out_image", "stem_mlp_out_image_b0"),
    ("stem_mlp_out_state", "stem_mlp_out_state"),
    ("stem_tokens_image", "stem_tokens_image"),
    ("stem_tokens_state", "stem_tokens_state"),
    ("trunk_input", "trunk_input"),
    ("trunk_block0_out", "trunk_block0_out"),
    ("trunk_output", "trunk_output"),
    ("pooled_feature", "pooled_feature"),
    ("head_output_normalized_action", "head_output_normalized_action"),
    ("action_unnormalized", "action_unnormalized"),
]


@pytest.mark.parametrize(("stage", "fixture_key"), STAGES)
def test_stage_matches_upstream(stages, io, stage, fixture_key):
    actual = stages[stage]
    if fixture_key.endswith("_b0"):  # the fixture keeps batch item 0 only
        actual = actual[:1]
    err = max_err(actual, io[fixture_key])
    print(f"{stage}: max abs err {err:.3g}")
    assert err <= ATOL


def test_last_block_is_trunk_output(stages):
    assert torch.equal(stages["trunk_block1_out"], stages["trunk_output"])


def test_forward_features_returns_the_unnormalised_chunk(policy, io, stages):
    with torch.no_grad():
        action = policy.forward_features(
            torch.from_numpy(io["input_image_features"][:, 0]),
            torch.from_numpy(io["input_state_raw"][:, 0]),
        )
    assert action.shape == (4, 8, 8)
    assert torch.equal(action, stages["action_unnormalized"])
    np.testing.assert_allclose(action.reshape(4, 64).numpy(), io["action_unnormalized"], atol=ATOL)


def test_batch_of_one_matches(policy, io):
    with torch.no_grad():
        action = policy.forward_features(
            torch.from_numpy(io["input_image_features"][1:2, 0]),
            torch.from_numpy(io["input_state_raw"][1:2, 0]),
        )
    expected = io["action_unnormalized"][1:2]
    np.testing.assert_allclose(action.reshape(1, 64).numpy(), expected, atol=ATOL)


def test_normaliser_buffers_loaded(policy, io):
    for part in ("action", "state"):
        norm = getattr(policy, f"{part}_normalizer")
        np.testing.assert_array_equal(norm.scale.numpy(), io[f"normalizer_{part}_scale"])
        np.testing.assert_array_equal(norm.offset.numpy(), io[f"normalizer_{part}_offset"])
        np.testing.assert_array_equal(norm.input_stats.min.numpy(), io[f"normalizer_{part}_min"])
        np.testing.assert_array_equal(norm.input_stats.max.numpy(), io[f"normalizer_{part}_max"])


def test_config_read_from_official_yaml(policy):
    c = policy.config
    assert (c.embed_dim, c.num_blocks, c.num_heads) == (64, 2, 4)
    assert (c.domain, c.state_dim, c.action_dim, c.action_horizon) == ("franka_feed_dog", 8, 8, 8)
    assert (c.latent_tokens_image, c.latent_tokens_state) == (16, 16)
    assert c.head_widths == (256, 128) and c.image_mlp_widths == (128,)


def test_every_official_key_is_used_except_modality_tokens(policy, official_state):
    ours = set(policy.state_dict())
    theirs = set(official_state)
    assert theirs - ours == {"modalities_tokens.image", "modalities_tokens.state"}
    assert ours == theirs - {"modalities_tokens.image", "modalities_tokens.state"}


def test_policy_without_encoder_refuses_raw_images(policy):
    with pytest.raises(RuntimeError, match="no image encoder"):
        policy(torch.zeros(1, 2, 32, 32, 3, dtype=torch.uint8), torch.zeros(1, 8))


def test_wrong_input_shapes_are_explained(policy):
    with pytest.raises(ValueError, match=r"image_features must be \[B, 2, 49, 512\]"):
        policy.forward_features(torch.zeros(1, 3, 49, 512), torch.zeros(1, 8))
    with pytest.raises(ValueError, match=r"state must be \[B, 8\]"):
        policy.forward_features(torch.zeros(1, 2, 49, 512), torch.zeros(1, 7))


# -- token_postprocessing: max -------------------------------------------------------------------
# The fixtures hold mean-pooled outputs only. Upstream's max branch is
# ``trunk_tokens.max(dim=1)[0]``; below, that expression and upstream's head and
# normaliser are written out with torch.nn.functional on the fixture weights and fed
# upstream's own trunk_output. The same function with mean pooling reproduces the
# fixture's pooled_feature, head output and actions, which checks it.

HEAD = "heads.franka_feed_dog.net."
ACTION_NORM = "normalizer.franka_feed_dog.params_dict.action."


def upstream_head(trunk_output: np.ndarray, weights: dict, pooling: str) -> dict[str, torch.Tensor]:
    """Upstream postprocess_tokens + policy_head.MLP (eval: dropout off) + postprocess_actions."""
    tokens = torch.from_numpy(trunk_output)
    pooled = tokens.mean(dim=1) if pooling == "mean" else tokens.max(dim=1)[0]
    x = F.silu(F.linear(pooled, weights[HEAD + "0.weight"], weights[HEAD + "0.bias"]))
    x = F.linear(x, weights[HEAD + "2.weight"], weights[HEAD + "2.bias"])
    x = F.silu(F.layer_norm(x, (x.shape[-1],), weights[HEAD + "4.weight"], weights[HEAD + "4.bias"], eps=1e-5))
    head_out = torch.tanh(F.linear(x, weights[HEAD + "6.weight"], weights[HEAD + "6.bias"]))
    steps = head_out.reshape(-1, 8)
    action = (steps - weights[ACTION_NORM + "offset"]) / weights[ACTION_NORM + "scale"]
    return {"pooled_feature": pooled, "head_output_normalized_action": head_out,
            "action_unnormalized": action.reshape(head_out.shape)}


@pytest.fixture(scope="module")
def max_stages(tmp_path_factory, fixtures, official_state, io):
    folder = write_official_dir(tmp_path_factory.mktemp("official_max") / "run", official_state, fixtures)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["network"]["token_postprocessing"] = "max"
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    policy = load_official_model(folder)
    assert policy.config.token_postprocessing == "max"
    with torch.no_grad():
        return policy.forward_stages(torch.from_numpy(io["input_image_features"][:, 0]),
                                     torch.from_numpy(io["input_state_raw"][:, 0]))


POOLED_STAGES = ("pooled_feature", "head_output_normalized_action", "action_unnormalized")


@pytest.mark.parametrize("stage", POOLED_STAGES)
def test_reference_head_reproduces_the_mean_fixture(io, official_state, stage):
    reference = upstream_head(io["trunk_output"], official_state, "mean")
    err = max_err(reference[stage], io[stage])
    print(f"{stage} (reference head, mean): max abs err {err:.3g}")
    assert err <= ATOL


@pytest.mark.parametrize("stage", POOLED_STAGES)
def test_max_pooling_matches_upstream(max_stages, io, official_state, stage):
    assert max_err(max_stages["trunk_output"], io["trunk_output"]) <= ATOL  # pooling changes nothing before it
    reference = upstream_head(io["trunk_output"], official_state, "max")
    err = max_err(max_stages[stage], reference[stage].numpy())
    print(f"{stage} (max): max abs err {err:.3g}")
    assert err <= ATOL
    # the two poolings give clearly different actions, so the comparison can tell them apart
    assert max_err(reference[stage], io[stage]) > 100 * ATOL


def test_max_pooling_survives_a_checkpoint_round_trip(tmp_path, fixtures, official_state, io):
    folder = write_official_dir(tmp_path / "run", official_state, fixtures)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["network"]["token_postprocessing"] = "max"
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    policy = load_official_model(folder)
    loaded, _ = load_checkpoint(save_checkpoint(tmp_path / "own", policy))
    assert loaded.config.token_postprocessing == "max"
    features = torch.from_numpy(io["input_image_features"][:, 0])
    state = torch.from_numpy(io["input_state_raw"][:, 0])
    with torch.no_grad():
        assert torch.equal(loaded.forward_features(features, state), policy.forward_features(features, state))


# -- load_official_model failure modes ---------------------------------------------------------


def test_unknown_and_missing_keys_are_listed(tmp_path, fixtures, official_state):
    state = dict(official_state)
    state["heads.franka_feed_dog.net.9.weight"] = torch.zeros(3)
    del state["stems.franka_feed_dog_state.tokens"]
    folder = write_official_dir(tmp_path / "bad", state, fixtures)
    with pytest.raises(CheckpointError) as info:
        load_official_model(folder)
    err = info.value
    assert err.file == folder / "model.pth"
    assert err.unexpected == ["heads.franka_feed_dog.net.9.weight"]
    assert err.missing == ["stems.franka_feed_dog_state.tokens"]
    assert "model.pth" in str(err) and "net.9.weight" in str(err)


def test_config_that_disagrees_with_weights_is_a_shape_error(tmp_path, fixtures, official_state):
    folder = write_official_dir(tmp_path / "bad", official_state, fixtures)
    config = yaml.safe_load((folder / "config.yaml").read_text())
    config["stem"]["image"]["widths"] = [96]
    (folder / "config.yaml").write_text(yaml.safe_dump(config))
    with pytest.raises(CheckpointError) as info:
        load_official_model(folder)
    keys = [k for k, _, _ in info.value.mismatched]
    assert "stems.franka_feed_dog_image.net.0.weight" in keys


def test_trunk_pth_next_to_model_must_agree(tmp_path, fixtures, official_state):
    folder = write_official_dir(tmp_path / "run", official_state, fixtures)
    trunk = torch.load(fixtures / "tiny_trunk.pt", map_location="cpu", weights_only=True)
    torch.save(trunk, folder / "trunk.pth")
    load_official_model(folder)  # same weights: fine
    trunk["trunk.blocks.0.mlp.fc1.bias"] = trunk["trunk.blocks.0.mlp.fc1.bias"] + 1.0
    torch.save(trunk, folder / "trunk.pth")
    with pytest.raises(CheckpointError, match="differ from those in model.pth"):
        load_official_model(folder)


def test_domain_inferred_or_chosen(tmp_path, fixtures, official_state):
    state = dict(official_state)
    for key, value in official_state.items():
        for part in ("stems", "heads", "normalizer"):
            if key.startswith(f"{part}.franka_feed_dog"):
                state[key.replace("franka_feed_dog", "other_arm", 1)] = value.clone()
    folder = write_official_dir(tmp_path / "two", state, fixtures)
    with pytest.raises(CheckpointError, match="several domains"):
        load_official_model(folder)
    with pytest.raises(CheckpointError, match="not in file"):
        load_official_model(folder, domain="nope")
    policy = load_official_model(folder, domain="other_arm")
    assert policy.config.domain == "other_arm"
    assert "heads.other_arm.net.0.weight" in policy.state_dict()


def test_trunk_only_folder_points_to_load_official_trunk(tmp_path, fixtures):
    torch.save(torch.load(fixtures / "tiny_trunk.pt", weights_only=True), tmp_path / "trunk.pth")
    with pytest.raises(CheckpointError, match="load_official_trunk"):
        load_official_model(tmp_path)


def test_fresh_policy_has_official_key_layout(official_state):
    config = HPTConfig(embed_dim=64, num_blocks=2, num_heads=4, domain="franka_feed_dog",
                       state_dim=8, action_dim=8)  # fmt: skip
    ours = {k: tuple(v.shape) for k, v in HPTPolicy(config).state_dict().items()}
    theirs = {
        k: tuple(v.shape)
        for k, v in official_state.items()
        if not k.startswith("modalities_tokens")
    }
    assert ours == theirs
    assert list(ours) == list(theirs)  # same order, too
