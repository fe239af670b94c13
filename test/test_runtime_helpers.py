"""Shared helpers of the runtime tests (no tests here): a tiny robot spec with exact binary numbers.

rate 8 Hz -> period 0.125 s; max_velocity_fraction 0.5, so the per-tick step limit is
joint a: 0.5 * 2.0 * 0.125 = 0.125, joint b: 0.5 * 1.0 * 0.125 = 0.0625.
Cameras cam0 (view 0) and cam1 (view 1) have max_age 0.25 s, joints max_age 0.125 s.
"""

from __future__ import annotations

import copy
from typing import Any

from hpt_ros.spec import RobotSpec, parse_spec

TINY: dict[str, Any] = {
    "version": 1,
    "robot": {"name": "tiny", "rate_hz": 8.0},
    "stems": {
        "image": {"modality": "image", "views": 2},
        "state": {"modality": "state", "dim": 2},
    },
    "sensors": {
        "cam0": {"topic": "/cam0", "type": "sensor_msgs/msg/Image", "stem": "image", "view": 0, "max_age": 0.25},
        "cam1": {"topic": "/cam1", "type": "sensor_msgs/msg/Image", "stem": "image", "view": 1, "max_age": 0.25},
        "joints": {"topic": "/joint_states", "type": "sensor_msgs/msg/JointState", "stem": "state",
                   "joints": ["a", "b"], "max_age": 0.125},
    },
    "action": {
        "kind": "joint_position",
        "horizon": 3,
        "joints": ["a", "b"],
        "command": {"topic": "/cmd", "type": "std_msgs/msg/Float64MultiArray"},
    },
    "limits": {
        "a": {"lower": -1.0, "upper": 1.0, "velocity": 2.0},
        "b": {"lower": 0.0, "upper": 0.5, "velocity": 1.0},
    },
    "safety": {"require_enable": True, "max_velocity_fraction": 0.5},
    "execution": {"mode": "temporal_ensemble", "ensemble_coefficient": 0.5, "replan_every": 2},
}


def tiny_data() -> dict[str, Any]:
    """A fresh copy of the tiny spec's mapping, to edit before ``parse_spec``."""
    return copy.deepcopy(TINY)


def tiny_spec(**sections: dict[str, Any]) -> RobotSpec:
    """The tiny spec; each keyword updates that top-level section (``safety={"require_enable": False}``)."""
    data = tiny_data()
    for name, value in sections.items():
        if isinstance(data.get(name), dict) and isinstance(value, dict):
            data[name].update(value)
        else:
            data[name] = value
    return parse_spec(data, "tiny.yaml")
