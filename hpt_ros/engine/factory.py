"""Build a policy for a robot spec, and load the engine a spec (or a command line) asks for.

``build_policy_for_spec`` makes a fresh ``HPTPolicy`` whose sizes come from the spec and
whose normaliser is set from the spec's joint limits (sensible before any training).
``load_engine`` opens an hpt_ros checkpoint folder (``model.safetensors`` + ``hpt.yaml``)
or an ``.onnx`` file with its sidecar YAML, checks that the model fits the spec, and
returns the engine. Nothing is ever unpickled.

Beyond sizes, the model must have been made for the spec's joints, views and action
layout (``model_check``: ``SpecMismatchError`` unless ``allow_spec_mismatch``).
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .base import Engine, EngineError, check_model_sizes
from .model_check import SpecMismatchError, check_model_spec, load_checked_checkpoint

if TYPE_CHECKING:  # pragma: no cover
    from hpt_ros.model import HPTConfig, HPTPolicy
    from hpt_ros.spec import RobotSpec

__all__ = [
    "BACKENDS",
    "PRECISIONS",
    "SpecMismatchError",
    "TINY_SIZE",
    "build_policy_for_spec",
    "check_model_spec",
    "config_for_spec",
    "domain_for",
    "load_engine",
    "resolve_model_path",
]

logger = logging.getLogger("hpt_ros.engine")

BACKENDS = ("torch", "onnxruntime")
PRECISIONS = ("fp32", "bf16", "fp16")

TINY_SIZE: tuple[int, int, int] = (64, 2, 4)
"""``size="tiny"``: (embed_dim, num_blocks, num_heads) of the official test fixture; for tests."""

_NOT_DOMAIN = re.compile(r"[^A-Za-z0-9_\-]+")


def domain_for(name: str) -> str:
    """The spec's robot name made into a valid HPT domain (letters, digits, ``_``, ``-``)."""
    domain = _NOT_DOMAIN.sub("_", name).strip("_")
    return domain or "robot"


def config_for_spec(spec: RobotSpec, size: str | None = None) -> HPTConfig:
    """``HPTConfig`` with the spec's dimensions; ``size`` (or ``spec.model.size``) names the trunk."""
    from hpt_ros.model import HPTConfig

    name = size or spec.model.size or "small"
    dims: dict[str, Any] = dict(
        domain=domain_for(spec.name),
        state_dim=spec.state_dim,
        action_dim=spec.action.dim,
        action_horizon=spec.action.horizon,
        num_views=spec.num_views,
        image_size=spec.image_size,
    )
    if name == "tiny":
        embed_dim, num_blocks, num_heads = TINY_SIZE
        return HPTConfig(embed_dim=embed_dim, num_blocks=num_blocks, num_heads=num_heads, **dims)
    return HPTConfig.from_size(name, **dims)


def build_policy_for_spec(
    spec: RobotSpec,
    size: str | None = None,
    vision_weights: Any = None,
    random_vision: bool = False,
) -> HPTPolicy:
    """A fresh ``HPTPolicy`` (eval mode) for ``spec``, with a ResNet-18 encoder.

    Args:
        spec: the robot spec: dimensions, domain name and joint limits come from it.
        size: trunk size ("tiny", "small", "base", "large", "xlarge"); default ``spec.model.size``.
        vision_weights: ResNet-18 ImageNet weights (a local file or a state dict).
        random_vision: build the encoder with random weights on purpose (tests, timing).
            Without weights and without this, the policy has no encoder (features only).

    The normaliser maps the spec's joint limits onto [-1, 1]: state from the limits of
    ``spec.state_joints``, actions from the limits of ``spec.action.joints``. End-effector
    action kinds have no joint limits for their dimensions; their action normaliser is
    left as the identity.
    """
    from hpt_ros.model import HPTPolicy, ImageEncoder
    from hpt_ros.spec.compat import model_fields

    config = config_for_spec(spec, size)
    encoder = None
    if vision_weights is not None or random_vision:
        encoder = ImageEncoder(
            vision_weights, random_init=vision_weights is None, image_size=config.image_size
        )
    policy = HPTPolicy(config, encoder=encoder)
    policy.spec_fields = model_fields(spec)
    _limits_into(policy, spec)
    return policy.eval()


def _limits_into(policy: HPTPolicy, spec: RobotSpec) -> None:
    state_joints = spec.state_joints
    if all(j in spec.limits for j in state_joints):
        lower, upper, _ = spec.joint_limits_arrays(state_joints)
        policy.state_normalizer.set_limits(lower, upper)
        policy.normalizer_source = f"joint limits of robot spec {spec.name!r}"
    else:
        missing = [j for j in state_joints if j not in spec.limits]
        logger.warning("spec %s has no limits for state joints %s: state normaliser left as identity",
                       spec.source, missing)  # fmt: skip
    action_joints = spec.action.joints
    if spec.action.kind == "joint_position" and all(j in spec.limits for j in action_joints):
        lower, upper, _ = spec.joint_limits_arrays(action_joints)
        policy.action_normalizer.set_limits(lower, upper)


# -- loading -------------------------------------------------------------------------------------


def resolve_model_path(model: str | Path | None, spec: RobotSpec) -> Path | None:
    """The model path to load: ``model``, else ``spec.model.path`` (relative to the spec file)."""
    if model is not None and str(model) != "":
        return Path(model).expanduser()
    if not spec.model.path:
        return None
    path = Path(spec.model.path).expanduser()
    if not path.is_absolute() and spec.source not in ("", "<memory>"):
        beside = Path(spec.source).parent / path
        if beside.exists():
            return beside
    return path


def load_engine(
    model: str | Path | None,
    spec: RobotSpec,
    backend: str | None = None,
    precision: str | None = None,
    threads: int | None = None,
    *,
    allow_spec_mismatch: bool = False,
    **options: Any,
) -> Engine:
    """The engine for ``model`` on robot ``spec``.

    Args:
        model: an hpt_ros checkpoint folder (``model.safetensors`` + ``hpt.yaml``), an
            ``.onnx`` file exported by ``export_onnx`` (with its ``.onnx.yaml`` sidecar),
            or None for ``spec.model.path``.
        spec: the robot spec; the model's state_dim, action_dim, horizon and number of
            views must equal the spec's (otherwise ``EngineError`` names the file and the
            dimension).
        backend: "torch" or "onnxruntime"; default ``spec.engine.backend`` (an ``.onnx``
            file always runs on onnxruntime; a checkpoint asked to run on onnxruntime is
            exported to a temporary ONNX file first).
        precision: "fp32", "bf16" or "fp16"; default ``spec.engine.precision``.
        threads: intra-op CPU threads (default: torch's / onnxruntime's own choice).
        allow_spec_mismatch: run a model made for a spec that differs in joints, views
            or action layout (``SpecMismatchError`` otherwise), with a warning.
        **options: passed to ``TorchEngine`` / ``OnnxEngine``.
    """
    backend = backend or spec.engine.backend
    precision = precision or spec.engine.precision
    if backend not in BACKENDS:
        raise EngineError(f"unknown engine backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if precision not in PRECISIONS:
        raise EngineError(f"unknown precision {precision!r}; choose one of {', '.join(PRECISIONS)}")
    path = resolve_model_path(model, spec)
    if path is None:
        raise EngineError(
            f"no model given and robot spec {spec.source} has no model.path: pass a checkpoint "
            "folder or an .onnx file"
        )
    if not path.exists():
        raise EngineError(f"{path}: no such model file or folder")

    if path.is_file() and path.suffix == ".onnx":
        from .onnx_engine import OnnxEngine
        from .onnx_file import read_sidecar

        meta = read_sidecar(path)
        check_model_sizes(path, meta["sizes"], spec)
        comparison = check_model_spec(path, meta.get("robot_spec"), spec,
                                      recorded_hash=(meta.get("spec") or {}).get("hash"),
                                      allow_spec_mismatch=allow_spec_mismatch)
        if backend != "onnxruntime":
            logger.info("%s is an ONNX file: running it on onnxruntime (backend %s ignored)", path, backend)
        _check_options(OnnxEngine, options)
        engine: Engine = OnnxEngine(path, precision=precision, threads=threads, **options)
        engine.spec_comparison = comparison
        return engine

    if path.is_dir() or path.name == "hpt.yaml":
        folder = path if path.is_dir() else path.parent
        policy, comparison = load_checked_checkpoint(folder, spec, allow_spec_mismatch=allow_spec_mismatch)
        if backend == "torch":
            from .torch_engine import TorchEngine

            _check_options(TorchEngine, options)
            engine = TorchEngine(policy, precision=precision, threads=threads, **options)
        else:
            engine = _onnx_from_policy(policy, spec, precision, threads, options)
        engine.spec_comparison = comparison
        return engine
    raise EngineError(f"{path}: not a model: expected a checkpoint folder (hpt.yaml + model.safetensors) "
                      "or an .onnx file")  # fmt: skip


def _check_options(engine: type, options: dict[str, Any]) -> None:
    import inspect

    known = set(inspect.signature(engine.__init__).parameters) - {"self"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise EngineError(f"option(s) {', '.join(unknown)} do not apply to the {engine.backend} engine "
                          f"(it takes {', '.join(sorted(known))})")  # fmt: skip


def _onnx_from_policy(
    policy: HPTPolicy, spec: RobotSpec, precision: str, threads: int | None, options: dict[str, Any]
) -> Engine:
    import tempfile

    from .export import export_onnx
    from .onnx_engine import OnnxEngine

    _check_options(OnnxEngine, options)
    holder = tempfile.TemporaryDirectory(prefix="hpt_ros_onnx_")
    onnx_precision = "fp16" if precision == "fp16" else "fp32"
    file = export_onnx(policy, Path(holder.name) / "policy.onnx", spec=spec, precision=onnx_precision)
    logger.info("exported the checkpoint to %s for onnxruntime", file)
    engine = OnnxEngine(file, precision=precision, threads=threads, **options)
    engine._export_dir = holder  # removed with the engine
    return engine
