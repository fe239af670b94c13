"""Training state on disk without pickle: tensors in safetensors, scalars in YAML.

A resumable checkpoint folder holds what ``save_checkpoint`` writes (``model.safetensors``
+ ``hpt.yaml``) plus

* ``optimizer.safetensors``: the AdamW state per parameter, keyed by parameter name
  (``<name>::exp_avg``, ``<name>::exp_avg_sq``, ``<name>::step``) and torch's RNG state
  (``rng::torch``);
* ``trainer_state.yaml``: the step, the param groups' hyper-parameters (with the names of
  their parameters), the numpy RNG state, the loss history so far and the run's
  identity (config, split, trunk checksums) that a resume is checked against.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
import yaml

__all__ = ["OPTIMIZER_FILE", "TRAINER_STATE_FILE", "load_optimizer_state", "read_trainer_state",
           "save_optimizer_state", "write_trainer_state"]

OPTIMIZER_FILE = "optimizer.safetensors"
TRAINER_STATE_FILE = "trainer_state.yaml"
_SEP = "::"


def _names_by_id(named: Mapping[str, torch.nn.Parameter]) -> dict[int, str]:
    return {id(p): name for name, p in named.items()}


def save_optimizer_state(folder: str | Path, optimizer: torch.optim.Optimizer,
                         named_parameters: Mapping[str, torch.nn.Parameter]) -> dict[str, Any]:
    """Write ``optimizer.safetensors``; returns the YAML-safe param-group description."""
    from safetensors.torch import save_file

    names = _names_by_id(named_parameters)
    tensors: dict[str, torch.Tensor] = {}
    for param, state in optimizer.state.items():
        name = names[id(param)]
        for key, value in state.items():
            value = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"{name}{_SEP}{key}"] = value.detach().to("cpu").contiguous().clone()
    tensors[f"rng{_SEP}torch"] = torch.get_rng_state().clone()
    save_file(tensors, str(Path(folder) / OPTIMIZER_FILE), metadata={"format": "hpt_ros.optimizer/1"})
    groups = []
    for group in optimizer.param_groups:
        entry = {k: (list(v) if isinstance(v, tuple) else v) for k, v in group.items() if k != "params"}
        entry = {k: v for k, v in entry.items() if isinstance(v, (int, float, bool, str, list, type(None)))}
        entry["params"] = [names[id(p)] for p in group["params"]]
        groups.append(entry)
    return {"param_groups": groups}


def load_optimizer_state(folder: str | Path, optimizer: torch.optim.Optimizer,
                         named_parameters: Mapping[str, torch.nn.Parameter], groups: list[dict[str, Any]]) -> None:
    """Restore what ``save_optimizer_state`` wrote into an optimizer built the same way.

    Raises ``ValueError`` when the parameters of the groups differ (another freezing or
    another model).
    """
    from safetensors.torch import load_file

    tensors = load_file(str(Path(folder) / OPTIMIZER_FILE))
    names = _names_by_id(named_parameters)
    if len(groups) != len(optimizer.param_groups):
        raise ValueError(f"the checkpoint has {len(groups)} parameter groups, this run {len(optimizer.param_groups)}")
    for saved, group in zip(groups, optimizer.param_groups):
        current = [names[id(p)] for p in group["params"]]
        if list(saved["params"]) != current:
            missing = sorted(set(current) - set(saved["params"]))
            extra = sorted(set(saved["params"]) - set(current))
            raise ValueError("the trained parameters differ from the checkpoint's (trunk frozen in one, not the "
                             f"other?): new {missing[:5]}, gone {extra[:5]}")
        for key, value in saved.items():
            if key != "params" and key in group:
                group[key] = tuple(value) if isinstance(group[key], tuple) else value
    by_name = dict(named_parameters)
    on_device = {id(p) for g in optimizer.param_groups if g.get("fused") or g.get("capturable") for p in g["params"]}
    optimizer.state.clear()
    for full, value in tensors.items():
        name, _, key = full.rpartition(_SEP)
        if name == "rng":
            continue
        param = by_name.get(name)
        if param is None:
            raise ValueError(f"optimizer state for unknown parameter {name}")
        if key == "step":  # as torch's own load_state_dict: fused/capturable keep it on the parameter's device
            optimizer.state[param][key] = value.to(param.device) if id(param) in on_device else value
        else:
            optimizer.state[param][key] = value.to(param.device, param.dtype)
    if f"rng{_SEP}torch" in tensors:
        torch.set_rng_state(tensors[f"rng{_SEP}torch"])


def write_trainer_state(folder: str | Path, state: Mapping[str, Any]) -> Path:
    path = Path(folder) / TRAINER_STATE_FILE
    path.write_text(yaml.safe_dump(dict(state), sort_keys=False))
    return path


def read_trainer_state(folder: str | Path) -> dict[str, Any]:
    path = Path(folder) / TRAINER_STATE_FILE
    data = yaml.safe_load(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a mapping")
    return data
