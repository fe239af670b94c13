"""Error metrics between predicted and recorded action vectors (pure numpy).

Per action dimension: MAE, RMSE and the largest absolute error, in the action's units
(rad, m, ...) and in normalised units. Normalised units are the spec's joint-limit
normalisation, the space the HPT head predicts in: ``x_n = 2 (x - lower) / (upper - lower) - 1``,
so an error of ``e`` is ``2 e / (upper - lower)`` normalised; a dimension without limits
(end-effector axes) has no normalised value (``None``). The "overall" figures pool every
(tick, dimension) pair that has a normalised value.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .actions import ActionLayout

__all__ = ["error_metrics", "json_safe"]


def _per_dim(values: np.ndarray, labels: tuple[str, ...]) -> dict[str, float | None]:
    return {name: (float(v) if np.isfinite(v) else None) for name, v in zip(labels, values)}


def error_metrics(errors: np.ndarray, layout: ActionLayout) -> dict[str, Any]:
    """Metrics of ``errors`` float64 [ticks, dim] (predicted - recorded, angles wrapped)."""
    errors = np.asarray(errors, dtype=np.float64).reshape(-1, layout.dim)
    count = int(errors.shape[0])
    labels = layout.labels
    if count == 0:
        empty = {name: None for name in labels}
        return {
            "ticks_evaluated": 0, "mae": empty, "rmse": empty, "max_abs_error": empty,
            "mae_normalized": empty, "rmse_normalized": empty, "max_abs_error_normalized": empty,
            "mae_normalized_overall": None, "rmse_normalized_overall": None, "max_abs_error_normalized_overall": None,
        }  # fmt: skip
    absolute = np.abs(errors)
    span = layout.span
    normalised = 2.0 * errors / span  # NaN columns where no limits
    abs_n = np.abs(normalised)
    known = np.isfinite(span)
    out: dict[str, Any] = {
        "ticks_evaluated": count,
        "mae": _per_dim(absolute.mean(axis=0), labels),
        "rmse": _per_dim(np.sqrt((errors**2).mean(axis=0)), labels),
        "max_abs_error": _per_dim(absolute.max(axis=0), labels),
        "mae_normalized": _per_dim(abs_n.mean(axis=0), labels),
        "rmse_normalized": _per_dim(np.sqrt((normalised**2).mean(axis=0)), labels),
        "max_abs_error_normalized": _per_dim(abs_n.max(axis=0), labels),
    }
    if known.any():
        pooled = normalised[:, known]
        out["mae_normalized_overall"] = float(np.abs(pooled).mean())
        out["rmse_normalized_overall"] = float(np.sqrt((pooled**2).mean()))
        out["max_abs_error_normalized_overall"] = float(np.abs(pooled).max())
    else:
        out["mae_normalized_overall"] = out["rmse_normalized_overall"] = out["max_abs_error_normalized_overall"] = None
    return out


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
