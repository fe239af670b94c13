"""Torch engine and factory: fp32 equals the policy, bf16 within 1% of the action range,
folded BN equals unfolded, the normaliser comes from the spec, and load_engine checks the
model against the spec (tiny policy, small frames)."""

from __future__ import annotations

import logging

import numpy as np
import pytest
from conftest import (
    VIEW_ORDER_TOLERANCE,
    distinct_view_inputs,
    engine_inputs,
    reference_actions,
    swapped_views,
    view_order_error,
)
import torch

from hpt_ros.engine import EngineError, TorchEngine, build_policy_for_spec, load_engine
from hpt_ros.engine.graph import PolicyGraph, action_range
from hpt_ros.engine.torch_engine import action_error_percent
from hpt_ros.model import HPTPolicy, save_checkpoint


@pytest.fixture(scope="module")
def spec(franka_spec):
    return franka_spec


@pytest.fixture(scope="module")
def policy(tiny_policy):
    return tiny_policy


def inputs(spec, batch=2, height=48, width=64, seed=0):
    return engine_inputs(spec, batch, height, width, seed)


reference = reference_actions


def test_policy_for_spec_has_spec_sizes_and_limits(spec, policy):
    c = policy.config
    assert (c.embed_dim, c.num_blocks, c.num_heads) == (64, 2, 4)
    assert (c.state_dim, c.action_dim, c.action_horizon, c.num_views) == (8, 8, 8, 2)
    assert c.domain == "franka_fr3"
    lo, hi, _ = spec.joint_limits_arrays(spec.state_joints)
    np.testing.assert_allclose(policy.state_normalizer.input_stats.min.numpy(), lo, rtol=1e-6)
    np.testing.assert_allclose(policy.state_normalizer.input_stats.max.numpy(), hi, rtol=1e-6)
    # the limits map onto [-1, 1]
    normed = policy.state_normalizer.normalize(torch.tensor(np.stack([lo, hi]), dtype=torch.float32))
    np.testing.assert_allclose(normed.numpy(), [[-1] * 8, [1] * 8], atol=1e-5)
    lo, hi, _ = spec.joint_limits_arrays(spec.action.joints)
    np.testing.assert_allclose(action_range(policy).numpy(), hi - lo, rtol=1e-5)
    # unnormalised actions of a fresh policy lie inside the joint limits (tanh head)
    images, state = inputs(spec)
    actions = reference(policy, images, state)
    assert actions.shape == (2, 8, 8)
    assert (actions >= lo - 1e-5).all() and (actions <= hi + 1e-5).all()


def test_fp32_engine_equals_policy_forward(spec, policy):
    images, state = inputs(spec, height=50, width=70)
    want = reference(policy, images, state)
    span = action_range(policy).numpy()
    plain = TorchEngine(policy, mode="eager", fold_bn=False, channels_last=False, device="cpu")
    got = plain.predict(images, state)
    assert got.dtype == np.float32 and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5 * span.max())
    # the default fp32 engine (folded BN, channels-last, frozen trace) stays fp32-accurate
    fast = TorchEngine(policy, device="cpu", mode="trace")
    assert fast.precision == "fp32"
    assert action_error_percent(fast.predict(images, state), want, span) < 1e-3


def test_folded_batchnorm_equals_unfolded(spec, policy):
    # give the BN layers non-trivial statistics first, or folding is a no-op
    trained = build_policy_for_spec(spec, size="tiny", random_vision=True)
    trained.load_state_dict(policy.state_dict())
    gen = torch.Generator().manual_seed(1)
    for module in trained.encoder.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            n = module.num_features
            module.running_mean.copy_(torch.randn(n, generator=gen) * 0.1)
            module.running_var.copy_(torch.rand(n, generator=gen) + 0.5)
            module.weight.data.copy_(torch.rand(n, generator=gen) + 0.5)
            module.bias.data.copy_(torch.randn(n, generator=gen) * 0.1)
    images, state = inputs(spec, batch=1)
    x, s = torch.from_numpy(images), torch.from_numpy(state)
    with torch.inference_mode():
        unfolded = PolicyGraph(trained, fold_bn=False)(x, s).numpy()
        folded_graph = PolicyGraph(trained, fold_bn=True)
        folded = folded_graph(x, s).numpy()
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded_graph.backbone.modules())
    span = action_range(trained).numpy()
    assert action_error_percent(folded, unfolded, span) < 1e-3
    engine = TorchEngine(trained, mode="eager", fold_bn=True, device="cpu")
    assert action_error_percent(engine.predict(images, state), reference(trained, images, state), span) < 1e-3


def test_bf16_within_one_percent_of_action_range(spec, policy):
    span = action_range(policy).numpy()
    engine = TorchEngine(policy, precision="bf16", mode="eager", device="cpu")
    assert engine.precision == "bf16"
    assert engine.probe_error_percent is not None and engine.probe_error_percent <= 1.0
    for seed in range(3):
        images, state = inputs(spec, seed=seed)
        got = engine.predict(images, state)
        assert got.dtype == np.float32
        assert action_error_percent(got, reference(policy, images, state), span) < 1.0
    # 1 % of range would not see a swapped pair of cameras: the engine must respond to a swap as fp32 does
    images, state = distinct_view_inputs(spec, batch=2)
    assert view_order_error(engine.predict, policy, images, state) < VIEW_ORDER_TOLERANCE


@pytest.mark.parametrize(("precision", "mode"), [("bf16", "eager"), ("fp32", "trace")])
def test_an_engine_that_swaps_the_views_is_caught(spec, policy, precision, mode):
    engine = TorchEngine(policy, precision=precision, mode=mode, device="cpu")
    images, state = distinct_view_inputs(spec, batch=2)

    def swapping(images, state):  # the bug: cameras fed in the wrong order
        return engine.predict(swapped_views(images), state)

    assert view_order_error(engine.predict, policy, images, state) < VIEW_ORDER_TOLERANCE
    assert view_order_error(swapping, policy, images, state) > 3 * VIEW_ORDER_TOLERANCE


def test_reduced_precision_falls_back_when_off_tolerance(spec, policy, caplog):
    with caplog.at_level(logging.WARNING, logger="hpt_ros.engine"):
        engine = TorchEngine(policy, precision="bf16", mode="eager", device="cpu", tolerance=1e-9)
    assert engine.precision == "fp32"
    lines = [r.getMessage() for r in caplog.records if r.name == "hpt_ros.engine"]
    assert len(lines) == 2 and "bf16" in lines[0] and "tolerance" in lines[0]


def test_trace_mode_handles_batch_sizes(spec, policy):
    engine = TorchEngine(policy, mode="trace", device="cpu")
    for batch in (1, 3):
        images, state = inputs(spec, batch=batch, seed=batch)
        got = engine.predict(images, state)
        assert got.shape == (batch, 8, 8)
        np.testing.assert_allclose(got, reference(policy, images, state), atol=1e-4)


def test_bad_inputs_are_clear(spec, policy):
    engine = TorchEngine(policy, mode="eager", device="cpu")
    images, state = inputs(spec)
    with pytest.raises(EngineError, match="images must be"):
        engine.predict(images[:, :1], state)
    with pytest.raises(EngineError, match="state must be"):
        engine.predict(images, state[:, :5])


def test_load_engine_from_checkpoint(spec, policy, tmp_path):
    folder = save_checkpoint(tmp_path / "ckpt", policy)
    engine = load_engine(folder, spec, backend="torch", precision="fp32", mode="eager")
    assert engine.backend == "torch" and (engine.horizon, engine.action_dim) == (8, 8)
    images, state = inputs(spec)
    np.testing.assert_allclose(engine.predict(images, state), reference(policy, images, state), atol=1e-4)


@pytest.mark.parametrize(
    ("change", "named"),
    [({"action_horizon": 4}, "action_horizon 4"), ({"state_dim": 7}, "state_dim 7"), ({"num_views": 1}, "num_views 1")],
)
def test_load_engine_rejects_checkpoint_that_does_not_fit_spec(spec, policy, tmp_path, change, named):
    other = HPTPolicy(policy.config.replace(**change))  # no encoder needed: rejected before loading
    folder = save_checkpoint(tmp_path / "other", other)
    with pytest.raises(EngineError) as info:
        load_engine(folder, spec, backend="torch")
    message = str(info.value)
    assert str(folder / "hpt.yaml") in message and named in message and spec.name in message


def test_load_engine_without_model_is_clear(spec):
    with pytest.raises(EngineError, match="no model"):
        load_engine(None, spec)
    with pytest.raises(EngineError, match="no such model"):
        load_engine("/nonexistent/model.onnx", spec)
    with pytest.raises(EngineError, match="unknown engine backend"):
        load_engine("/nonexistent", spec, backend="tensorflow")


def test_cv2_resize_path_close_to_graph_resize(spec, policy):
    images, state = inputs(spec, height=480, width=640)
    span = action_range(policy).numpy()
    want = reference(policy, images, state)
    engine = TorchEngine(policy, mode="eager", device="cpu", resize="cv2")
    assert engine.resize == "cv2"
    # resized pixels are rounded to uint8 (<= 0.8 grey levels): a small, bounded change
    assert action_error_percent(engine.predict(images, state), want, span) < 0.2
    assert TorchEngine(policy, mode="eager", device="cpu").resize == "graph"  # fp32 default: exact


def test_default_mode_works_without_a_compiler(spec, policy, monkeypatch):
    """"auto" picks the compiled "aot" step for bf16 only where a C++ compiler exists; without
    one the default engine still runs (traced) and gives the same bf16 actions."""
    from hpt_ros.engine import torch_engine

    monkeypatch.delenv("HPT_ROS_TORCH_MODE", raising=False)
    monkeypatch.setattr(torch_engine, "_can_compile", lambda device: False)
    engine = TorchEngine(policy, precision="bf16", device="cpu")
    assert engine.mode == "trace" and engine.precision == "bf16"
    images, state = inputs(spec)
    eager = TorchEngine(policy, precision="bf16", mode="eager", device="cpu")
    span = action_range(policy).numpy()
    assert action_error_percent(engine.predict(images, state), eager.predict(images, state), span) < 0.5
    monkeypatch.setattr(torch_engine, "_can_compile", lambda device: True)
    assert engine._resolve_mode("auto", "bf16") == "aot" and engine._resolve_mode("auto", "fp32") == "trace"
