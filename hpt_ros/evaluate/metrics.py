"""Error metrics between predicted and recorded action vectors (pure numpy).

Per action dimension: MAE, RMSE and the largest absolute error, in the action's units
(rad, m, ...) and in normalised units. Normalised units are the spec's joint-limit
normalisation, the space the HPT head predicts in: ``x_n = 2 (x - lower) / (upper - lower) - 1``,
so an error of ``e`` is ``2 e / (upper - lower)`` normalised; a dimension without limits
(end-effector axes) has no normalised value (``None``). The "overall" figures pool every
(tick, dimension) pair that has a normalised value. A dimension a bag does not record
(NaN errors) is left out of the figures it would otherwise join.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .actions import ActionLayout

__all__ = ["error_metrics", "json_safe", "masked_max", "masked_mean"]


def _per_dim(values: np.ndarray, labels: tuple[str, ...]) -> dict[str, float | None]:
    return {name: (float(v) if np.isfinite(v) else None) for name, v in zip(labels, values)}


def error_metrics(errors: np.ndarray, layout: ActionLayout) -> dict[str, Any]:
    """Metrics of ``errors`` float64 [ticks, dim] (predicted - recorded, angles wrapped).

    NaN marks a dimension that was not scored at that tick (a bag without the gripper
    topic, say): each dimension is scored over its finite entries only, and a dimension
    without any has ``None`` metrics.
    """
    errors = np.asarray(errors, dtype=np.float64).reshape(-1, layout.dim)
    count = int(errors.shape[0])
    labels = layout.labels
    scored = np.isfinite(errors)
    per_dim_count = scored.sum(axis=0)
    out: dict[str, Any] = {
        "ticks_evaluated": count,
        "ticks_evaluated_per_dimension": dict(zip(labels, (int(n) for n in per_dim_count))),
    }
    if not scored.any():
        empty = {name: None for name in labels}
        out.update({
            "mae": empty, "rmse": empty, "max_abs_error": empty,
            "mae_normalized": empty, "rmse_normalized": empty, "max_abs_error_normalized": empty,
            "mae_normalized_overall": None, "rmse_normalized_overall": None, "max_abs_error_normalized_overall": None,
        })  # fmt: skip
        return out
    span = layout.span
    normalised = 2.0 * errors / span  # NaN columns where no limits
    with np.errstate(invalid="ignore", divide="ignore"):  # all-NaN columns become None below
        out.update({
            "mae": _per_dim(masked_mean(np.abs(errors), scored), labels),
            "rmse": _per_dim(np.sqrt(masked_mean(errors**2, scored)), labels),
            "max_abs_error": _per_dim(masked_max(np.abs(errors), scored), labels),
            "mae_normalized": _per_dim(masked_mean(np.abs(normalised), scored), labels),
            "rmse_normalized": _per_dim(np.sqrt(masked_mean(normalised**2, scored)), labels),
            "max_abs_error_normalized": _per_dim(masked_max(np.abs(normalised), scored), labels),
        })  # fmt: skip
    pooled = normalised[np.isfinite(normalised)]  # every scored (tick, dimension) pair with limits
    if pooled.size:
        out["mae_normalized_overall"] = float(np.abs(pooled).mean())
        out["rmse_normalized_overall"] = float(np.sqrt((pooled**2).mean()))
        out["max_abs_error_normalized_overall"] = float(np.abs(pooled).max())
    else:
        out["mae_normalized_overall"] = out["rmse_normalized_overall"] = out["max_abs_error_normalized_overall"] = None
    return out


def masked_mean(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Column means over ``mask`` (NaN for a column without entries)."""
    return np.where(mask, values, 0.0).sum(axis=0) / mask.sum(axis=0)


def masked_max(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """Column maxima over ``mask`` (NaN for a column without entries)."""
    return np.where(mask.any(axis=0), np.where(mask, values, -np.inf).max(axis=0), np.nan)


def json_safe(value: Any) -> Any:
    """``value`` with NaN/inf floats as None and numpy scalars/arrays as Python values (strict JSON)."""
    if isinstance(value, dict):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return json_safe(value.tolist())
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value
