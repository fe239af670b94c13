"""The learning-rate schedule: linear warm-up, then one cosine decay, as a pure function of the step.

Being a function of the step only, it needs no state of its own: resuming at step ``s``
sets the same rate as an uninterrupted run.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["WarmupCosine"]


@dataclass(frozen=True)
class WarmupCosine:
    """``lr(step)`` for step 0, 1, ... (the rate used by the optimiser step number ``step``).

    * ``step < warmup_steps``: linear from ``init_lr`` (step 0) towards ``peak_lr``;
    * then ``eta_min + (peak_lr - eta_min) * (1 + cos(pi * s / t_max)) / 2`` with
      ``s = step - warmup_steps``, and ``eta_min`` once ``s >= t_max``.
    """

    peak_lr: float
    warmup_steps: int
    t_max: int
    init_lr: float = 1e-10
    eta_min: float = 0.0

    def __call__(self, step: int) -> float:
        if step < self.warmup_steps:
            return self.init_lr + (self.peak_lr - self.init_lr) * step / self.warmup_steps
        s = step - self.warmup_steps
        if self.t_max <= 0 or s >= self.t_max:
            return self.eta_min if self.t_max > 0 else self.peak_lr
        return self.eta_min + (self.peak_lr - self.eta_min) * (1.0 + math.cos(math.pi * s / self.t_max)) / 2.0
