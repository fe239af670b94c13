"""Checks a model must pass before it runs on a robot: its sizes and the spec fields it records.

Below ``factory`` (which loads engines) and ``export`` (which writes ONNX files), so that
neither needs the other.

Beyond sizes, a model records the robot spec fields it was made for (joint names and
order, camera views, action layout: ``hpt_ros.spec.compat``). Loading under a spec that
differs in them raises ``SpecMismatchError`` listing every difference, unless
``allow_spec_mismatch`` is set, which logs the differences as a warning on every load.
Topic renames and another robot name are only noted.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import EngineError, check_model_sizes

if TYPE_CHECKING:  # pragma: no cover
    from hpt_ros.model import HPTPolicy
    from hpt_ros.spec import RobotSpec
    from hpt_ros.spec.compat import SpecComparison

__all__ = ["SpecMismatchError", "check_model_spec", "load_checked_checkpoint"]

logger = logging.getLogger("hpt_ros.engine")


class SpecMismatchError(EngineError):
    """The model was made for a robot spec that differs in joints, views or action layout."""


def check_model_spec(
    where: str | Path,
    recorded: Any,
    spec: RobotSpec,
    *,
    recorded_hash: str | None = None,
    allow_spec_mismatch: bool = False,
) -> SpecComparison:
    """Compare a model's recorded spec fields with ``spec``: refuse, warn or note (see the module docstring).

    ``recorded``: the model's ``robot_spec`` fields (None for models written before
    they were recorded: a warning says what cannot be checked, unless ``recorded_hash``
    equals the spec's hash).
    """
    from hpt_ros.spec.compat import compare_model_fields

    comparison = compare_model_fields(recorded if isinstance(recorded, dict) else None, spec, recorded_hash)
    if not comparison.recorded and not comparison.same_hash:
        logger.warning("%s records no robot spec fields (written before they were recorded): its joint order, "
                       "camera views and action layout cannot be checked against %s, only its sizes%s", where,
                       spec.source, f" (it was made under spec hash {recorded_hash[:12]})" if recorded_hash else "")
    for note in comparison.notes:
        logger.info("%s: %s (runs unchanged)", where, note)
    if comparison.differences:
        listing = "\n".join(f"  - {d}" for d in comparison.differences)
        text = f"{where}: the model was made for a robot spec that differs from {spec.source}:\n{listing}"
        if not allow_spec_mismatch:
            raise SpecMismatchError(
                text + "\nIt would read and command these slots with the meaning it was trained on. Use a model "
                "made for this spec, or accept the differences explicitly with allow_spec_mismatch (parameter "
                "allow_spec_mismatch:=true, hpt-ros policy --allow-spec-mismatch)")  # fmt: skip
        logger.warning("SPEC MISMATCH ALLOWED (allow_spec_mismatch): %s", text)
    return comparison


def load_checked_checkpoint(folder: Path, spec: RobotSpec, *,
                            allow_spec_mismatch: bool = False) -> tuple[HPTPolicy, SpecComparison]:
    """``folder``'s policy, after checking its sizes and recorded spec fields against ``spec``."""
    import yaml

    from hpt_ros.model import CheckpointError, load_checkpoint

    meta_file = folder / "hpt.yaml"
    # Check the sizes before building anything, so a mismatch says which dimension.
    try:
        meta = yaml.safe_load(meta_file.read_text())
        config = dict(meta["config"])
    except (OSError, yaml.YAMLError, KeyError, TypeError) as exc:
        raise EngineError(f"{meta_file}: not an hpt_ros checkpoint ({type(exc).__name__}: {exc})") from exc
    found = {k: config.get(k) for k in ("state_dim", "action_dim", "num_views")}
    found["action_horizon"] = config.get("action_horizon", 8)
    check_model_sizes(meta_file, found, spec)
    extra = meta.get("extra") if isinstance(meta.get("extra"), dict) else {}
    comparison = check_model_spec(meta_file, meta.get("robot_spec"), spec, recorded_hash=extra.get("spec_hash"),
                                  allow_spec_mismatch=allow_spec_mismatch)
    try:
        policy, _ = load_checkpoint(folder)
    except CheckpointError as exc:
        raise EngineError(str(exc)) from exc
    if policy.encoder is None:
        raise EngineError(
            f"{folder}: checkpoint has no image encoder, so it cannot run on camera frames; "
            "save it with a ResNet-18 ImageEncoder attached"
        )
    return policy, comparison
