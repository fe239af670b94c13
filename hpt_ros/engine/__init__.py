"""Inference engines: raw camera frames + joint state in, unnormalised action chunk out.

Two backends behind one interface (``Engine.predict``): ``torch`` (``TorchEngine``) and
``onnxruntime`` (``OnnxEngine``, on a file written by ``export_onnx``). ``load_engine``
picks one from a robot spec (``engine.backend`` / ``engine.precision``) or from
arguments, and checks that the model fits the spec. ``build_policy_for_spec`` makes a
fresh policy with the spec's sizes and joint-limit normaliser.

The heavy modules (torch, onnxruntime) are imported when first used.
"""

from __future__ import annotations

from typing import Any

from .base import Engine, EngineError
from .factory import BACKENDS, PRECISIONS, build_policy_for_spec, config_for_spec, domain_for, load_engine

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "Engine",
    "EngineError",
    "OnnxEngine",
    "PolicyGraph",
    "TorchEngine",
    "action_error_percent",
    "build_policy_for_spec",
    "config_for_spec",
    "domain_for",
    "export_onnx",
    "load_engine",
    "read_sidecar",
    "select_providers",
    "sidecar_path",
]

_LAZY = {
    "OnnxEngine": "onnx_engine",
    "read_sidecar": "onnx_file",
    "select_providers": "onnx_engine",
    "PolicyGraph": "graph",
    "TorchEngine": "torch_engine",
    "action_error_percent": "torch_engine",
    "export_onnx": "export",
    "sidecar_path": "onnx_file",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{module}", __name__), name)
