"""Config, normaliser and small building blocks of the HPT model."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import yaml

from hpt_ros.model import (
    TRUNK_SIZES,
    ActionHead,
    ConfigError,
    CrossAttention,
    HPTConfig,
    HPTPolicy,
    LimitsNormalizer,
    sinusoid_table,
)


def test_from_size_and_dict_round_trip_through_yaml():
    config = HPTConfig.from_size("base", state_dim=9, action_dim=7, domain="ur5", num_views=1)
    assert (config.embed_dim, config.num_blocks, config.num_heads) == TRUNK_SIZES["base"]
    assert config.size_name == "base" and config.action_output_dim == 56
    data = yaml.safe_load(yaml.safe_dump(config.to_dict()))
    assert HPTConfig.from_dict(data) == config


def test_config_errors_are_specific():
    with pytest.raises(ConfigError, match="unknown trunk size"):
        HPTConfig.from_size("huge", state_dim=1, action_dim=1)
    with pytest.raises(ConfigError, match="divisible"):
        HPTConfig(embed_dim=30, num_blocks=1, num_heads=4, state_dim=1, action_dim=1)
    with pytest.raises(ConfigError, match="state_dim"):
        HPTConfig(embed_dim=32, num_blocks=1, num_heads=4, state_dim=0, action_dim=1)
    with pytest.raises(ConfigError, match="domain"):
        HPTConfig(embed_dim=32, num_blocks=1, num_heads=4, state_dim=1, action_dim=1, domain="a.b")
    with pytest.raises(ConfigError, match="invalid HPTConfig"):
        HPTConfig.from_dict({"embed_dim": 32})


def test_unsupported_upstream_options_are_refused():
    base = {
        "network": {
            "embed_dim": 64, "num_blocks": 2, "num_heads": 4, "token_postprocessing": "action_token"
        },
        "stem": {"image": {"input_dim": 512}, "state": {"input_dim": 8}},
        "head": {"output_dim": 64},
    }
    with pytest.raises(ConfigError, match="token_postprocessing 'action_token' .supported: mean, max"):
        HPTConfig.from_official_config(base)
    for pooling in ("mean", "max"):
        base["network"]["token_postprocessing"] = pooling
        config = HPTConfig.from_official_config(base)
        assert (config.domain, config.action_dim, config.state_dim) == ("robot", 8, 8)
        assert config.token_postprocessing == pooling
    with pytest.raises(ConfigError, match="token_postprocessing must be one of"):
        config.replace(token_postprocessing="last")


def test_limits_normaliser_maps_limits_to_unit_range():
    data = np.array([[0.0, -2.0, 5.0], [1.0, 2.0, 5.0], [0.5, 0.0, 5.0]])
    norm = LimitsNormalizer.fit_limits(data)
    x = torch.tensor(data, dtype=torch.float32)
    y = norm.normalize(x)
    np.testing.assert_allclose(y[:, :2].min(0).values, [-1, -1], atol=1e-6)
    np.testing.assert_allclose(y[:, :2].max(0).values, [1, 1], atol=1e-6)
    torch.testing.assert_close(norm.unnormalize(y), x)
    # a constant dim maps to 0 with scale 1 and comes back exactly; no inf/nan
    assert float(norm.scale[2]) == 1.0 and torch.all(y[:, 2] == 0)
    assert torch.equal(norm.unnormalize(y)[:, 2], x[:, 2])
    stats = norm.stats_dict()
    assert stats["min"] == [0.0, -2.0, 5.0] and stats["mean"][0] == pytest.approx(0.5)


def test_limits_formula_matches_upstream_buffers():
    # Franka joint limits from the fixtures README; scale = 2/(max-min), offset = -1-scale*min
    lo = np.array([-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973, 0.0])
    hi = np.array([2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973, 0.08])
    norm = LimitsNormalizer(8)
    norm.set_limits(lo, hi)
    np.testing.assert_allclose(norm.scale.numpy(), 2 / (hi - lo), rtol=1e-6)
    np.testing.assert_allclose(norm.offset.numpy(), -1 - 2 / (hi - lo) * lo, atol=1e-6)


def test_normaliser_rejects_bad_limits():
    norm = LimitsNormalizer(2)
    with pytest.raises(ValueError, match="2 values"):
        norm.set_limits([0.0], [1.0])
    with pytest.raises(ValueError, match="max >= min"):
        norm.set_limits([1.0, 0.0], [0.0, 1.0])
    with pytest.raises(ValueError, match="finite"):
        norm.set_limits([0.0, 0.0], [1.0, float("nan")])


def test_normaliser_is_in_state_dict_as_upstream():
    keys = list(LimitsNormalizer(3).state_dict())
    assert keys == ["offset", "scale", "input_stats.max", "input_stats.mean",
                    "input_stats.min", "input_stats.std"]  # fmt: skip


def test_posemb_layout():
    table = sinusoid_table(5, 6)
    assert torch.equal(table[0], torch.tensor([0.0, 1, 0, 1, 0, 1]))
    assert torch.allclose(table[3, 0], torch.sin(torch.tensor(3.0)))
    assert torch.allclose(table[3, 3], torch.cos(torch.tensor(3.0 / 10000 ** (2 / 6))))
    assert sinusoid_table(2, 5).shape == (2, 5)


def test_cross_attention_is_plain_softmax_attention():
    torch.manual_seed(0)
    attn = CrossAttention(16, heads=2, dim_head=8, dropout=0.0)
    x, ctx = torch.randn(2, 4, 16), torch.randn(2, 7, 16)
    q = attn.to_q(x).reshape(2, 4, 2, 8).transpose(1, 2)
    k, v = (t.reshape(2, 7, 2, 8).transpose(1, 2) for t in attn.to_kv(ctx).chunk(2, -1))
    ref = torch.nn.functional.scaled_dot_product_attention(q, k, v)
    ref = attn.to_out(ref.transpose(1, 2).reshape(2, 4, 16))
    torch.testing.assert_close(attn(x, ctx), ref)


def test_head_layout_without_dropout():
    head = ActionHead(8, (16, 12), 4, dropout=0.0)
    assert [k for k in head.state_dict() if k.endswith("weight")] == [
        "net.0.weight", "net.2.weight", "net.3.weight", "net.5.weight"]  # fmt: skip


def test_eval_is_deterministic_and_train_uses_dropout():
    torch.manual_seed(0)
    policy = HPTPolicy(HPTConfig(embed_dim=32, num_blocks=2, num_heads=4, state_dim=3, action_dim=2,
                                 drop_path=0.1, num_views=1))  # fmt: skip
    features, state = torch.rand(2, 1, 49, 512), torch.randn(2, 3)
    policy.eval()
    with torch.no_grad():
        first = policy.forward_features(features, state)
        assert torch.equal(first, policy.forward_features(features, state))
        policy.train()
        a, b = policy.forward_features(features, state), policy.forward_features(features, state)
    assert not torch.equal(a, b)
    assert a.shape == (2, 8, 2)


def test_param_counts_add_up():
    config = HPTConfig(embed_dim=32, num_blocks=1, num_heads=4, state_dim=3, action_dim=2)
    policy = HPTPolicy(config)
    counts = policy.param_counts()
    assert counts["total"] == sum(p.numel() for p in policy.parameters())
    assert counts["encoder"] == 0 and counts["trunk"] == policy.trunk_num_params()
