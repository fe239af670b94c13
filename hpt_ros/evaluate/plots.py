"""PNG plots of a replay evaluation (matplotlib's Agg canvas; no display, no global pyplot state).

* ``plot_episode``: per action dimension, the recorded action (a step line: the latest
  recorded command) and the policy's command at each tick over the bag's time; ticks
  held by safety are shaded, and every reason is listed in the legend.
* ``plot_error_summary``: the distribution of the per-tick errors of all episodes
  (normalised units when the spec has limits) and per-dimension MAE / RMSE.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .actions import ActionLayout
from .episode import EpisodeResult
from .metrics import masked_mean

__all__ = ["episode_figure", "episode_grid", "plot_episode", "plot_error_summary"]

_HELD_COLOURS = ("#f4a6a6", "#f7d08a", "#b7c8f0", "#c9e4b4", "#dcc6e0")


def _figure(width: float, height: float):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=80)
    FigureCanvasAgg(fig)
    return fig


def _held_spans(times: np.ndarray, reasons: Sequence[str], period: float) -> list[tuple[float, float, str]]:
    spans: list[tuple[float, float, str]] = []
    for t, reason in zip(times, reasons):
        if not reason:
            continue
        if spans and spans[-1][2] == reason and abs(spans[-1][1] - (t - period / 2)) < period * 0.6:
            spans[-1] = (spans[-1][0], t + period / 2, reason)
        else:
            spans.append((t - period / 2, t + period / 2, reason))
    return spans


def plot_episode(result: EpisodeResult, layout: ActionLayout, path: Path, title: str, period_s: float) -> Path:
    """Predicted vs recorded per action dimension over the bag's time; returns ``path``."""
    fig, _ = episode_figure(result, layout, title, period_s)
    fig.savefig(path)
    return path


def episode_grid(dim: int) -> tuple[int, int]:
    """(rows, columns) of the per-dimension panels of ``episode_figure``."""
    cols = 2 if dim > 1 else 1
    return math.ceil(dim / cols), cols


def episode_figure(result: EpisodeResult, layout: ActionLayout, title: str, period_s: float,
                   size_in: tuple[float, float] | None = None):
    """The figure of ``plot_episode`` (``size_in``: width, height in inches at 80 dpi) and its used axes."""
    dim = layout.dim
    rows, cols = episode_grid(dim)
    fig = _figure(*(size_in or (6.0 * cols, 1.9 * rows + 0.8)))
    axes = fig.subplots(rows, cols, sharex=True, squeeze=False).reshape(-1)
    t = result.tick_s
    spans = _held_spans(t, result.reasons, period_s)
    reasons = sorted({s[2] for s in spans})
    colour = {r: _HELD_COLOURS[i % len(_HELD_COLOURS)] for i, r in enumerate(reasons)}
    for j in range(dim):
        ax = axes[j]
        for start, end, reason in spans:
            ax.axvspan(start, end, color=colour[reason], alpha=0.5, lw=0)
        ax.step(t, result.recorded[:, j], where="post", color="0.3", lw=1.2, label="recorded")
        ax.plot(t, result.predicted[:, j], ".-", color="C0", ms=3, lw=0.8, label="policy")
        ax.set_ylabel(layout.labels[j], fontsize=8)
        if layout.labels[j] in result.not_scored:
            ax.set_title(f"not scored: {result.not_scored[layout.labels[j]]}", fontsize=7, loc="left")
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    for ax in axes[dim:]:
        ax.set_visible(False)
    for ax in axes[max(0, dim - cols):dim]:
        ax.set_xlabel("time since bag start [s]", fontsize=8)
    handles, labels = axes[0].get_legend_handles_labels()
    from matplotlib.patches import Patch

    handles += [Patch(color=colour[r], alpha=0.5) for r in reasons]
    labels += [f"held: {r}" for r in reasons]
    fig.legend(handles, labels, loc="upper right", fontsize=7, ncol=min(4, len(labels)))
    fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / fig.get_figheight()))
    return fig, list(axes[:dim])


def plot_error_summary(errors: np.ndarray, layout: ActionLayout, path: Path, title: str) -> Path:
    """Histogram of every per-tick error and per-dimension MAE / RMSE; returns ``path``."""
    errors = np.asarray(errors, dtype=np.float64).reshape(-1, layout.dim)
    span = layout.span
    known = np.isfinite(span)
    normalised = known.any()
    values = 2.0 * errors[:, known] / span[known] if normalised else errors
    labels = [lab for lab, k in zip(layout.labels, known) if k] if normalised else list(layout.labels)
    unit = "normalised units (2 err / (upper - lower))" if normalised else "action units"
    fig = _figure(11.0, 3.8)
    left, right = fig.subplots(1, 2)
    finite = np.isfinite(values)  # NaN: a dimension a bag does not record
    if finite.any():
        left.hist(values[finite], bins=60, color="C0", alpha=0.85)
    left.set_xlabel(f"policy - recorded [{unit}]", fontsize=8)
    left.set_ylabel("ticks x dims", fontsize=8)
    left.set_title(f"error distribution ({values.shape[0]} ticks)", fontsize=9)
    x = np.arange(len(labels))
    if finite.any():
        with np.errstate(invalid="ignore"):  # a column without entries: NaN, drawn as no bar
            mae = masked_mean(np.abs(values), finite)
            rmse = np.sqrt(masked_mean(values**2, finite))
        right.bar(x - 0.2, mae, 0.4, label="MAE")
        right.bar(x + 0.2, rmse, 0.4, label="RMSE")
        right.legend(fontsize=7)
    right.set_xticks(x)
    right.set_xticklabels(labels, rotation=45, ha="right", fontsize=7)
    right.set_title(f"per dimension [{'normalised' if normalised else 'action units'}]", fontsize=9)
    for ax in (left, right):
        ax.tick_params(labelsize=7)
        ax.grid(alpha=0.3)
    fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    fig.tight_layout(rect=(0, 0, 1, 0.95))
    fig.savefig(path)
    return path
