"""The training loss and the evaluation of a policy on samples (validation, baselines)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

__all__ = ["chunk_loss", "evaluate_samples"]


def chunk_loss(normalizer: Any, pred: torch.Tensor, target: torch.Tensor, beta: float,
               reduction: str = "mean") -> torch.Tensor:
    """The training loss: smooth-L1 (Huber with threshold ``beta``) between predicted and target
    chunks [B, H, A], both normalised by the policy's action normaliser, so every dimension
    weighs by its range rather than its units."""
    return F.smooth_l1_loss(normalizer.normalize(pred), normalizer.normalize(target), beta=beta, reduction=reduction)


@torch.no_grad()
def evaluate_samples(policy: Any, samples: Any, *, batch_size: int = 256, beta: float = 0.05,
                     constant_action: np.ndarray | None = None) -> dict[str, Any]:
    """Loss and errors on ``samples`` (a ``SampleSet``), with the policy or a constant action.

    ``loss``: smooth-L1 on normalised chunks (the training loss). ``mae``: mean |error| in
    the action's units over all steps of the chunk and all dimensions; ``mae_first``: the
    same for the first step only (what is executed next); ``mae_first_per_dim``.
    With ``constant_action`` (a per-step action [A]) the prediction is that action at every step.
    """
    n = len(samples)
    if n == 0:
        return {"samples": 0}
    was_training = policy.training
    device = next(policy.parameters()).device
    policy.eval()
    norm = policy.action_normalizer
    loss_sum, abs_sum, abs_first_sum = 0.0, 0.0, None
    count = 0
    try:
        for start in range(0, n, batch_size):
            index = np.arange(start, min(start + batch_size, n))
            feats, state, target = (t.to(device) for t in samples.batch(index))
            if constant_action is None:
                pred = policy.forward_features(feats, state)
            else:
                pred = torch.as_tensor(np.asarray(constant_action, np.float32), device=device).expand_as(target)
            loss = chunk_loss(norm, pred, target, beta, reduction="sum")
            err = (pred - target).abs().double()
            loss_sum += float(loss)
            abs_sum += float(err.sum())
            first = err[:, 0, :].sum(0)
            abs_first_sum = first if abs_first_sum is None else abs_first_sum + first
            count += len(index)
    finally:
        policy.train(was_training)
    horizon, dim = samples.chunks.shape[1], samples.chunks.shape[2]
    per_dim = (abs_first_sum / count).tolist()
    return {"samples": count, "loss": loss_sum / (count * horizon * dim), "mae": abs_sum / (count * horizon * dim),
            "mae_first": float(sum(per_dim) / dim), "mae_first_per_dim": [float(v) for v in per_dim]}
