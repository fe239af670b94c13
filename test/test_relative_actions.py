"""Relative actions (``HPTConfig.action_relative``): the head predicts offsets from the input state.

The offset is added after the normaliser, in the policy, in the fused inference graph and in the
ONNX file, so every engine returns absolute joint targets; the trainer fits the action
normaliser on the offsets and adds them to the clean state while the stem sees a noisy one.
"""

from __future__ import annotations

import copy
import logging

import numpy as np
import pytest
import torch
from conftest import engine_inputs, reference_actions

from hpt_ros.engine import OnnxEngine, export_onnx
from hpt_ros.engine.graph import PolicyGraph
from hpt_ros.model import load_checkpoint, save_checkpoint
from hpt_ros.model.errors import ConfigError


@pytest.fixture(scope="module")
def policies(tiny_policy):
    """(absolute, relative): the same weights, offsets normalised over +-0.1 rad / m."""
    relative = copy.deepcopy(tiny_policy)
    relative.config = tiny_policy.config.replace(action_relative=True)
    dim = relative.config.action_dim
    relative.action_normalizer.set_limits(-0.1 * np.ones(dim), 0.1 * np.ones(dim))
    absolute = copy.deepcopy(relative)
    absolute.config = relative.config.replace(action_relative=False)
    return absolute.eval(), relative.eval()


def test_relative_actions_are_the_offsets_plus_the_state(policies, franka_spec) -> None:
    absolute, relative = policies
    images, state = engine_inputs(franka_spec, 3, seed=1)
    offsets = reference_actions(absolute, images, state)
    got = reference_actions(relative, images, state)
    assert np.allclose(got, offsets + state[:, None, :], atol=1e-6)
    assert np.abs(offsets).max() <= 0.1 + 1e-6  # the head's range is the offsets' range
    # another reference replaces the state only where the offset is added
    feats = relative.encode_images(torch.from_numpy(images))
    reference = torch.zeros(3, franka_spec.state_dim)
    with torch.no_grad():
        moved = relative.forward_features(feats, torch.from_numpy(state), action_reference=reference).numpy()
    assert np.allclose(moved, offsets, atol=1e-6)


def test_the_inference_graph_and_onnx_add_the_raw_state(policies, franka_spec, tmp_path) -> None:
    _, relative = policies
    images, state = engine_inputs(franka_spec, 2, seed=2)
    expected = reference_actions(relative, images, state)
    with torch.inference_mode():
        graph = PolicyGraph(relative)(torch.from_numpy(images), torch.from_numpy(state)).numpy()
    assert np.allclose(graph, expected, atol=1e-5)
    path = export_onnx(relative, tmp_path / "relative.onnx", spec=franka_spec, height=48, width=64)
    got = OnnxEngine(path, providers=["CPUExecutionProvider"]).predict(images, state)
    assert np.allclose(got, expected, atol=1e-4)
    assert not np.allclose(got, expected - state[:, None, :], atol=1e-2)


def test_checkpoints_keep_the_setting_and_mismatched_dims_are_refused(policies, tmp_path) -> None:
    _, relative = policies
    save_checkpoint(tmp_path / "m", relative, {"robot": "franka_fr3"})
    loaded, _ = load_checkpoint(tmp_path / "m")
    assert loaded.config.action_relative is True
    with pytest.raises(ConfigError, match="state_dim == action_dim"):
        relative.config.replace(state_dim=relative.config.action_dim + 1)


def test_the_trainer_fits_the_normaliser_on_offsets(policies) -> None:
    from hpt_ros.train.policy_setup import fit_normalizer

    rng = np.random.default_rng(4)

    class Samples:  # what fit_normalizer reads of a SampleSet
        states = rng.uniform(-1.0, 1.0, (20, 8)).astype(np.float32)
        chunks = (states[:, None, :] + rng.uniform(-0.05, 0.05, (20, 8, 8))).astype(np.float32)
        all_actions = chunks[:, 0, :]

    absolute, relative = (copy.deepcopy(p) for p in policies)
    fit_normalizer(relative, Samples())
    offsets = Samples.chunks.astype(np.float64) - Samples.states[:, None, :]
    stats = relative.action_normalizer.input_stats
    assert np.allclose(stats.min.numpy(), offsets.min((0, 1)), atol=1e-6)
    assert np.allclose(stats.max.numpy(), offsets.max((0, 1)), atol=1e-6)
    fit_normalizer(absolute, Samples())
    assert np.allclose(absolute.action_normalizer.input_stats.min.numpy(), Samples.all_actions.min(0), atol=1e-6)


def test_training_with_relative_actions_end_to_end(tmp_path, caplog) -> None:
    from hpt_ros.spec import load_spec
    from hpt_ros.train import TrainConfig, run_training
    from hpt_ros.train.sim_demos import record_sim_episodes

    caplog.set_level(logging.ERROR)
    demos = tmp_path / "demos"
    record_sim_episodes(demos, load_spec("franka_fr3"), 2, seed=5, duration_s=2.0)
    config = TrainConfig(robot="franka_fr3", episodes=[str(demos)], out=str(tmp_path / "run"), random_vision=True,
                         size="tiny", steps=2, batch_size=8, warmup_steps=1, val_every=2, save_every=2,
                         val_fraction=0.5, cache_dir=str(tmp_path / "cache"), export_onnx=False, progress=False,
                         threads=1, device="cpu", state_noise=0.5, action_relative=True)
    result = run_training(config)
    model, _ = load_checkpoint(result.model_dir)
    assert model.config.action_relative is True
    assert np.isfinite(result.metrics["val"]["loss"])
    # fitted on offsets: they straddle zero, where the arm's absolute targets for joint 4 never go
    stats = model.action_normalizer.input_stats
    assert float(stats.min[3]) < 0.0 < float(stats.max[3])
