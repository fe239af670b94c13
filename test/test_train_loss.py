"""The training loss value: smooth-L1 with beta 0.05 on limits-normalised chunks, against a
computation written out here in float64 numpy from the normaliser's [min, max]."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from hpt_ros.model import HPTConfig, HPTPolicy
from hpt_ros.train.config import TrainConfig
from hpt_ros.train.losses import chunk_loss, evaluate_samples

HORIZON, ACTION_DIM, STATE_DIM = 4, 3, 5
LOWER, UPPER = np.array([-1.0, 0.0, 10.0]), np.array([3.0, 0.08, 10.0])  # the last dim is constant


def smooth_l1_reference(pred: np.ndarray, target: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                        beta: float = 0.05) -> float:
    """Mean over all elements of 0.5 d^2 / beta if |d| < beta else |d| - 0.5 beta, d between the
    chunks mapped from [lower, upper] to [-1, 1] (a constant dimension maps to x - lower)."""
    lower, upper = np.asarray(lower, np.float64), np.asarray(upper, np.float64)
    span = upper - lower
    constant = span < 1e-4

    def normalise(x: np.ndarray) -> np.ndarray:
        return np.where(constant, x - lower, 2.0 * (x - lower) / np.where(constant, 1.0, span) - 1.0)

    d = np.abs(normalise(np.asarray(pred, np.float64)) - normalise(np.asarray(target, np.float64)))
    return float(np.where(d < beta, 0.5 * d * d / beta, d - 0.5 * beta).mean())


def reference_loss(pred: np.ndarray, target: np.ndarray, beta: float = 0.05) -> float:
    return smooth_l1_reference(pred, target, LOWER, UPPER, beta)


def make_policy() -> HPTPolicy:
    torch.manual_seed(0)
    config = HPTConfig(embed_dim=32, num_blocks=1, num_heads=4, domain="toy", state_dim=STATE_DIM,
                       action_dim=ACTION_DIM, action_horizon=HORIZON, crossattn_heads=2, crossattn_dim_head=16,
                       head_widths=(32,))  # fmt: skip
    policy = HPTPolicy(config)
    policy.action_normalizer.set_limits(LOWER, UPPER)
    return policy.eval()


class Samples:
    """What ``evaluate_samples`` reads of a SampleSet: len, chunks and batch(index)."""

    def __init__(self, n: int, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.features = rng.normal(size=(n, 2, 49, 512)).astype(np.float32)
        self.states = rng.normal(size=(n, STATE_DIM)).astype(np.float32)
        # targets spread over the range, so both branches of the Huber loss are taken
        self.chunks = rng.uniform(LOWER, UPPER, (n, HORIZON, ACTION_DIM)).astype(np.float32)

    def __len__(self) -> int:
        return len(self.states)

    def batch(self, index: np.ndarray):
        return (torch.from_numpy(self.features[index]), torch.from_numpy(self.states[index]),
                torch.from_numpy(self.chunks[index]))


def test_the_recipe_loss_is_smooth_l1_with_beta_0_05():
    assert TrainConfig(robot="x", episodes=["y"], out="z").loss_beta == 0.05


def test_chunk_loss_equals_the_reference_on_both_sides_of_beta():
    policy = make_policy()
    rng = np.random.default_rng(1)
    target = rng.uniform(LOWER, UPPER, (6, HORIZON, ACTION_DIM)).astype(np.float32)
    # half the predictions within a small fraction of the range (|d| < beta), half far away
    noise = rng.normal(size=target.shape) * np.where(rng.random(target.shape) < 0.5, 0.002, 0.5) * (UPPER - LOWER + 1)
    pred = (target + noise).astype(np.float32)
    span = np.where(UPPER - LOWER < 1e-4, 1.0, (UPPER - LOWER) / 2)
    d = np.abs(pred - target) / span
    assert (d < 0.05).mean() > 0.2 and (d > 0.05).mean() > 0.2  # both branches matter here
    got = float(chunk_loss(policy.action_normalizer, torch.from_numpy(pred), torch.from_numpy(target), 0.05))
    assert got == pytest.approx(reference_loss(pred, target), rel=1e-5)
    assert got != pytest.approx(reference_loss(pred, target, beta=1.0), rel=1e-3)  # beta matters


def test_evaluation_loss_is_the_training_loss_over_all_samples():
    policy = make_policy()
    samples = Samples(10)
    with torch.no_grad():
        feats, state, target = samples.batch(np.arange(10))
        pred = policy.forward_features(feats, state).numpy()
    metrics = evaluate_samples(policy, samples, batch_size=3, beta=0.05)  # 4 batches, the last one short
    assert metrics["samples"] == 10
    assert metrics["loss"] == pytest.approx(reference_loss(pred, samples.chunks), rel=1e-5)
    assert metrics["mae"] == pytest.approx(float(np.abs(pred - samples.chunks).mean()), rel=1e-5)
    constant = np.array([1.0, 0.04, 10.0], np.float32)
    baseline = evaluate_samples(policy, samples, batch_size=4, beta=0.05, constant_action=constant)
    expected = reference_loss(np.broadcast_to(constant, samples.chunks.shape), samples.chunks)
    assert baseline["loss"] == pytest.approx(expected, rel=1e-5)
