"""Fine-tuning: new stems and a head over a pretrained HPT trunk, from recorded episodes.

``hpt-ros train`` (``cli``) and ``run_training(TrainConfig(...))`` read the episodes the
teleop recorder wrote through the robot spec (``hpt_ros.data.dataset``), load the
pretrained trunk for real (strict, checksum-verified, sha256 stored), train with
upstream HPT's recipe (smooth-L1 on normalised chunks, AdamW, warm-up + cosine), and
write a checkpoint, an ONNX file, a loss curve and a summary.

* ``config``    - ``TrainConfig`` and the upstream recipe its defaults come from
* ``trainer``   - ``run_training``: the run, its checkpoints, history and resume
* ``policy_setup`` - the policy for the spec, the pretrained trunk loaded with provenance, normalisers fitted
* ``losses``    - the smooth-L1 chunk loss and ``evaluate_samples``
* ``errors``    - ``TrainError``
* ``schedule``  - warm-up + cosine learning rate as a pure function of the step
* ``state``     - optimizer / trainer state in safetensors + YAML (no pickle), for ``--resume``
* ``plots``     - the loss-curve PNG
* ``baselines`` - ``constant_action_policy``: the "mean training action" reference model
* ``sim_demos`` - scripted demonstrations of the fake FR3 in simulated time (tests, default model)
* ``cli``       - ``hpt-ros train``

Heavy modules (torch) are imported when first used.
"""

from __future__ import annotations

from typing import Any

from .config import OFFICIAL_RECIPE, TrainConfig

__all__ = [
    "OFFICIAL_RECIPE",
    "TrainConfig",
    "TrainError",
    "TrainResult",
    "TrunkProvenance",
    "WarmupCosine",
    "cli",
    "constant_action_policy",
    "evaluate_samples",
    "load_pretrained_trunk",
    "plot_loss_curve",
    "record_sim_episodes",
    "run_training",
]

_LAZY = {
    "TrainError": "errors",
    "TrainResult": "trainer",
    "TrunkProvenance": "policy_setup",
    "evaluate_samples": "losses",
    "load_pretrained_trunk": "policy_setup",
    "run_training": "trainer",
    "WarmupCosine": "schedule",
    "plot_loss_curve": "plots",
    "record_sim_episodes": "sim_demos",
    "cli": "cli",
    "constant_action_policy": "baselines",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
