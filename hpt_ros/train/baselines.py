"""Reference policies to compare a trained one with, runnable by every engine and by ``hpt-ros eval``.

``constant_action_policy(policy, action)`` returns a copy of ``policy`` whose head ignores
its input and always outputs ``action`` at every step of the chunk: the last Linear of
the head gets zero weights and the bias ``atanh(normalised action)``, so after the tanh
and the normaliser the chunk is ``action`` (to float precision, for actions inside the
normaliser's range). It is a regular ``HPTPolicy``: ``save_checkpoint`` it and evaluate
it like any model — the "predict the mean training action" baseline goes through the same
policy node, chunk execution and safety filter as the trained policy.
"""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import nn

__all__ = ["constant_action_policy"]


def constant_action_policy(policy: Any, action: Any) -> Any:
    """A copy of ``policy`` that predicts ``action`` ([action_dim], raw units) at every step."""
    c = policy.config
    action = np.asarray(action, dtype=np.float64).reshape(-1)
    if action.shape != (c.action_dim,):
        raise ValueError(f"action must have {c.action_dim} values, got {action.shape}")
    out = copy.deepcopy(policy).cpu()
    norm = out.action_normalizer
    scale, offset = norm.scale.double().numpy(), norm.offset.double().numpy()
    normalized = np.clip(action * scale + offset, -1 + 1e-6, 1 - 1e-6)
    last = [m for m in out.head.modules() if isinstance(m, nn.Linear)][-1]
    with torch.no_grad():
        last.weight.zero_()
        last.bias.copy_(torch.from_numpy(np.tile(np.arctanh(normalized), c.action_horizon)).to(last.bias.dtype))
    return out.eval()
