"""The loss-curve figure of a run (matplotlib, Agg backend: no display needed)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["plot_loss_curve"]


def _smooth(values: np.ndarray, window: int) -> np.ndarray:
    if len(values) < 3 or window <= 1:
        return values
    window = min(window, len(values))
    kernel = np.ones(window) / window
    padded = np.concatenate([np.full(window - 1, values[0]), values])
    return np.convolve(padded, kernel, mode="valid")


def plot_loss_curve(path: str | Path, train: Sequence[tuple[int, float]], val: Sequence[tuple[int, float]], *,
                    baseline: float | None = None, title: str = "", lr: Sequence[tuple[int, float]] = ()) -> Path:
    """Train loss per step (raw, faint, and a moving average), validation loss points, and an
    optional constant-baseline line, on a log scale; the learning rate on a second axis."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5), dpi=110)
    if train:
        steps, losses = (np.asarray(x, dtype=float) for x in zip(*train))
        ax.plot(steps, losses, color="tab:blue", alpha=0.25, linewidth=0.8)
        ax.plot(steps, _smooth(losses, max(1, len(losses) // 50)), color="tab:blue", linewidth=1.6,
                label="train (smooth-L1, normalised)")
    if val:
        steps_v, losses_v = (np.asarray(x, dtype=float) for x in zip(*val))
        ax.plot(steps_v, losses_v, "o-", color="tab:orange", markersize=3.5, linewidth=1.2, label="validation")
    if baseline is not None and np.isfinite(baseline):
        ax.axhline(baseline, color="grey", linestyle="--", linewidth=1.0,
                   label=f"validation, constant mean action ({baseline:.3g})")
    ax.set_yscale("log")
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.grid(True, which="both", alpha=0.3)
    handles, labels = ax.get_legend_handles_labels()
    if lr:
        ax2: Any = ax.twinx()
        steps_l, rates = (np.asarray(x, dtype=float) for x in zip(*lr))
        ax2.plot(steps_l, rates, color="tab:green", alpha=0.5, linewidth=0.9, label="learning rate")
        ax2.set_ylabel("learning rate")
        ax2.set_ylim(bottom=0)
        ax2.ticklabel_format(axis="y", style="sci", scilimits=(-2, 2))
        h2, l2 = ax2.get_legend_handles_labels()
        handles, labels = handles + h2, labels + l2
    ax.legend(handles, labels, loc="lower left", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path
