"""What a model must agree on with the robot spec it runs under, and how two specs differ.

A model learns a meaning for each input and output slot: which joint is state dim 3,
which camera is view 1, what action dim 0 commands. ``model_fields(spec)`` is that
meaning, taken from the spec the model was made for; checkpoints and ONNX sidecars
carry it. ``compare_model_fields(recorded, spec)`` lists where a spec disagrees:

* differences (a model would act with the wrong meaning): state joints and their
  order, the field read (position / velocity / effort), the sensor behind each camera
  view, the action kind, dimension, horizon, joints and their order, the end-effector
  frame and the gripper joint;
* notes (harmless): topic renames and another robot name.

The spec hash changes with any edit of a value (a limit, a rate; not a comment), so
equal hashes prove agreement and unequal ones say nothing until the fields are
compared. The normaliser source is recorded beside these fields (``normalizer.source``)
for the record only: its statistics travel inside the model, so no spec contradicts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .schema import RobotSpec

__all__ = ["MODEL_FIELDS_FORMAT", "SpecComparison", "compare_model_fields", "model_fields"]

MODEL_FIELDS_FORMAT = "hpt_ros.model_fields/1"


@dataclass(frozen=True)
class SpecComparison:
    """Outcome of ``compare_model_fields``: ``differences`` refuse a model, ``notes`` do not."""

    differences: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()
    same_hash: bool = False
    recorded: bool = True  # False: the model carries no fields (written before they were recorded)

    @property
    def compatible(self) -> bool:
        return not self.differences


def model_fields(spec: RobotSpec) -> dict[str, Any]:
    """The spec fields a model depends on, as YAML-safe builtins (what checkpoints record)."""
    action = spec.action
    fields: dict[str, Any] = {
        "format": MODEL_FIELDS_FORMAT,
        "robot": spec.name,
        "spec_hash": spec.spec_hash,
        "state": [{"sensor": s.name, "field": s.field, "joints": list(s.joints), "topic": s.topic}
                  for s in spec.state_sensors],
        "views": [{"view": s.view, "sensor": s.name, "topic": s.topic} for s in spec.image_sensors],
        "action": {
            "kind": action.kind,
            "dim": action.dim,
            "horizon": action.horizon,
            "joints": list(action.joints),
            "frame": action.frame,
            "gripper": action.gripper.joint if action.gripper else None,
            "command_topic": action.command.topic,
            "gripper_topic": action.gripper.topic if action.gripper else None,
        },
    }
    return fields


def compare_model_fields(recorded: Mapping[str, Any] | None, spec: RobotSpec,
                         recorded_hash: str | None = None) -> SpecComparison:
    """How ``spec`` differs from the ``recorded`` fields of a model (see the module docstring).

    ``recorded`` None (an older model) compares only what is known: ``recorded_hash``
    (equal: nothing to check) and nothing else; the caller warns.
    """
    if not recorded:
        return SpecComparison(same_hash=bool(recorded_hash) and recorded_hash == spec.spec_hash, recorded=False)
    want = model_fields(spec)
    same_hash = recorded.get("spec_hash") == spec.spec_hash
    differences: list[str] = []
    notes: list[str] = []

    def differ(what: str, model: Any, now: Any) -> None:
        if model != now:
            differences.append(f"{what}: model {model!r}, spec {now!r}")

    def note_topic(what: str, model: Any, now: Any) -> None:
        if model is not None and now is not None and model != now:
            notes.append(f"{what} topic renamed: {model} -> {now}")

    old_state, new_state = list(recorded.get("state") or []), want["state"]
    old_joints = [j for s in old_state for j in s.get("joints", [])]
    new_joints = [j for s in new_state for j in s["joints"]]
    if old_joints != new_joints:
        differences.append(_order_difference("state joints", old_joints, new_joints))
    differ("state fields read", [s.get("field") for s in old_state], [s["field"] for s in new_state])
    by_name = {s["sensor"]: s for s in new_state}
    for s in old_state:
        if s.get("sensor") in by_name:
            note_topic(f"state sensor {s['sensor']}", s.get("topic"), by_name[s["sensor"]]["topic"])

    old_views = {v.get("view"): v for v in recorded.get("views") or []}
    new_views = {v["view"]: v for v in want["views"]}
    differ("camera views", sorted(old_views), sorted(new_views))
    for view in sorted(set(old_views) & set(new_views)):
        old, new = old_views[view], new_views[view]
        differ(f"view {view} sensor", old.get("sensor"), new["sensor"])
        if old.get("sensor") == new["sensor"]:
            note_topic(f"view {view}", old.get("topic"), new["topic"])

    old_action, new_action = dict(recorded.get("action") or {}), want["action"]
    for key in ("kind", "dim", "horizon"):
        differ(f"action {key}", old_action.get(key), new_action[key])
    old_aj, new_aj = list(old_action.get("joints") or []), new_action["joints"]
    if old_aj != new_aj:
        differences.append(_order_difference("action joints", old_aj, new_aj))
    for key in ("frame", "gripper"):
        differ(f"action {key}", old_action.get(key) or None, new_action[key] or None)
    note_topic("command", old_action.get("command_topic"), new_action["command_topic"])
    note_topic("gripper command", old_action.get("gripper_topic"), new_action["gripper_topic"])
    if recorded.get("robot") != spec.name:
        notes.append(f"robot name: model made for {recorded.get('robot')!r}, spec is {spec.name!r}")
    return SpecComparison(tuple(differences), tuple(notes), same_hash, True)


def _order_difference(what: str, model: list[str], now: list[str]) -> str:
    if sorted(model) == sorted(now):
        return f"{what} in another order: model {model}, spec {now}"
    missing = [j for j in model if j not in now]
    extra = [j for j in now if j not in model]
    parts = [f"model {model}, spec {now}"]
    if missing:
        parts.append(f"spec lacks {missing}")
    if extra:
        parts.append(f"model lacks {extra}")
    return f"{what} differ: " + "; ".join(parts)
