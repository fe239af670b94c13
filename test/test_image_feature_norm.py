"""Image-feature standardisation (``HPTConfig.image_feature_norm``) and training-state noise."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpt_ros.engine.factory import config_for_spec
from hpt_ros.model import HPTPolicy, load_checkpoint, save_checkpoint
from hpt_ros.spec import load_spec

SPEC = load_spec("franka_fr3")


def _policies():
    base = config_for_spec(SPEC, "small").replace(embed_dim=64, num_blocks=2, num_heads=4)
    torch.manual_seed(0)
    plain = HPTPolicy(base).eval()
    normed = HPTPolicy(base.replace(image_feature_norm=True)).eval()
    normed.load_state_dict(plain.state_dict(), strict=False)  # same weights; the stats stay 0 / 1
    return plain, normed


def test_the_policy_standardises_features_with_the_fitted_stats() -> None:
    plain, normed = _policies()
    tokens = 2 * 49
    rng = np.random.default_rng(1)
    mean = rng.normal(2.0, 0.5, (tokens, 512))
    std = rng.uniform(0.5, 2.0, (tokens, 512))
    normed.set_image_feature_stats(mean, std)
    feats = torch.from_numpy(rng.normal(2.0, 1.0, (3, 2, 49, 512)).astype(np.float32))
    state = torch.zeros(3, SPEC.state_dim)
    by_hand = (feats.reshape(3, tokens, 512) - torch.from_numpy(mean).float()) / torch.from_numpy(std).float()
    with torch.no_grad():
        expected = plain.forward_features(by_hand.reshape(3, 2, 49, 512), state)
        got = normed.forward_features(feats, state)
    assert torch.allclose(got, expected, atol=1e-5)
    assert not torch.allclose(plain.forward_features(feats, state), expected, atol=1e-3)


def test_stats_are_checked_and_tiny_stds_raised_to_a_floor() -> None:
    plain, normed = _policies()
    with pytest.raises(ValueError, match="without image_feature_norm"):
        plain.set_image_feature_stats(np.zeros((98, 512)), np.ones((98, 512)))
    with pytest.raises(ValueError, match=r"\(98, 512\)"):
        normed.set_image_feature_stats(np.zeros((49, 512)), np.ones((49, 512)))
    with pytest.raises(ValueError, match="finite"):
        normed.set_image_feature_stats(np.full((98, 512), np.nan), np.ones((98, 512)))
    std = np.ones((98, 512))
    std[0, 0] = 0.0  # a channel that never varies
    normed.set_image_feature_stats(np.zeros((98, 512)), std)
    assert normed.image_feature_std[0, 0].item() == pytest.approx(0.1 * std.mean(), rel=1e-4)


def test_checkpoints_keep_the_stats_and_upstream_models_have_none(tmp_path) -> None:
    plain, normed = _policies()
    rng = np.random.default_rng(2)
    normed.set_image_feature_stats(rng.normal(size=(98, 512)), rng.uniform(0.5, 1.5, (98, 512)))
    save_checkpoint(tmp_path / "m", normed, {"robot": SPEC.name})
    loaded, _ = load_checkpoint(tmp_path / "m")
    assert loaded.config.image_feature_norm
    assert torch.equal(loaded.image_feature_mean, normed.image_feature_mean)
    assert torch.equal(loaded.image_feature_std, normed.image_feature_std)
    assert not any(k.startswith("image_feature") for k in plain.state_dict())


def test_the_trainer_fits_per_view_stats_over_the_frames_it_trains_on() -> None:
    from hpt_ros.train.policy_setup import fit_image_feature_norm

    class Samples:  # what fit_image_feature_norm reads of a SampleSet
        features = np.random.default_rng(3).normal(1.0, 2.0, (10, 49, 512)).astype(np.float16)
        frame_index = np.array([[0, 5], [1, 6], [1, 6], [2, 7]])  # frames 3, 4, 8, 9 are not in the split

    _, normed = _policies()
    fit_image_feature_norm(normed, Samples(), chunk=2)
    f = Samples.features.astype(np.float64)
    for view, rows in ((0, [0, 1, 2]), (1, [5, 6, 7])):
        got_mean = normed.image_feature_mean[view * 49:(view + 1) * 49].numpy()
        assert np.allclose(got_mean, f[rows].mean(0), atol=1e-4)
        got_std = normed.image_feature_std[view * 49:(view + 1) * 49].numpy()
        assert np.allclose(np.maximum(got_std, 0), np.maximum(f[rows].std(0), got_std.min()), atol=1e-3)
