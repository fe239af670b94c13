"""Export a whole per-robot policy to one ONNX file plus a sidecar YAML.

The graph is ``PolicyGraph``: raw camera frames (uint8 [B, V, H, W, 3] RGB) and the raw
joint state (float32 [B, S]) in, the unnormalised action chunk (float32 [B, horizon,
action_dim]) out; resize, ImageNet normalisation, ResNet-18, stems, trunk, head and both
normalisers are inside. The batch is dynamic; the image size is dynamic too unless
``dynamic_image_size=False`` fixes it at ``height`` x ``width``.

The sidecar (``<file>.onnx.yaml``) records the spec hash and the spec fields the model
was made for (``robot_spec``: joints, views, action layout), input/output names, dtypes
and shapes, the normaliser and its source, the model sizes, the file's sha256 and the
measured agreement with the torch model. ``hpt-ros export-onnx CHECKPOINT --out FILE`` is the
command line.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .base import EngineError, check_model_sizes
from .onnx_file import INPUT_NAMES, OUTPUT_NAMES, SIDECAR_FORMAT, file_sha256, sidecar_path

if TYPE_CHECKING:  # pragma: no cover
    from hpt_ros.model import HPTPolicy
    from hpt_ros.spec import RobotSpec

__all__ = [
    "DEFAULT_OPSET",
    "EXPORT_PRECISIONS",
    "INPUT_NAMES",
    "OUTPUT_NAMES",
    "SIDECAR_FORMAT",
    "cli",
    "export_onnx",
    "file_sha256",
    "sidecar_path",
]

logger = logging.getLogger("hpt_ros.engine")

DEFAULT_OPSET = 18
#: fp32 everywhere; fp16 = network in float16 (for GPUs), inputs/outputs/normalisers float32.
#: bf16 has no onnxruntime kernels for Conv, so it is not offered here (the torch engine has it).
EXPORT_PRECISIONS = ("fp32", "fp16")


def _example_inputs(policy: HPTPolicy, batch: int, height: int, width: int, seed: int = 0):
    import torch

    c = policy.config
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, (batch, c.num_views, height, width, 3), dtype=np.uint8)
    lo = policy.state_normalizer.input_stats.min.numpy()
    hi = policy.state_normalizer.input_stats.max.numpy()
    state = rng.uniform(lo, hi, (batch, c.state_dim)).astype(np.float32)
    return torch.from_numpy(images), torch.from_numpy(state)


def export_onnx(
    policy: HPTPolicy,
    path: str | Path,
    *,
    spec: RobotSpec | None = None,
    precision: str = "fp32",
    height: int = 480,
    width: int = 640,
    opset: int = DEFAULT_OPSET,
    dynamic_image_size: bool = True,
    fold_bn: bool = True,
    verify: bool = True,
    source: str | None = None,
    extra: dict[str, Any] | None = None,
) -> Path:
    """Write ``policy`` (with its encoder) to ``path`` as one ONNX file, plus the sidecar YAML.

    Args:
        policy: an ``HPTPolicy`` with an ``ImageEncoder``.
        path: the ``.onnx`` file to write (folders are created).
        spec: the robot spec it is for; its hash and name go into the sidecar (and its
            dimensions must fit the policy). The spec fields recorded are the policy's own
            (``policy.spec_fields``), else this spec's.
        precision: "fp32" or "fp16" (network in float16; meant for CUDA / TensorRT).
        height, width: the example frame size; the only accepted size when
            ``dynamic_image_size`` is False.
        opset: ONNX opset (the dynamo exporter's default, 18, is what is tested).
        dynamic_image_size: accept any H x W (the in-graph resize adapts).
        fold_bn: fold BatchNorm into the convs before export.
        verify: run the file in onnxruntime (CPU) on a batch of 2 and record in the sidecar
            the largest difference to the fp32 torch graph (for fp16: the precision loss).
        source: where the weights came from (recorded in the sidecar).
        extra: more YAML-safe data for the sidecar.

    Returns the path of the ONNX file.
    """
    import onnx
    import torch
    import yaml

    from hpt_ros.model import trunk_size_name
    from hpt_ros.spec.compat import model_fields

    from .graph import PolicyGraph, action_range

    if precision not in EXPORT_PRECISIONS:
        raise EngineError(
            f"ONNX export precision {precision!r} is not supported; choose one of "
            f"{', '.join(EXPORT_PRECISIONS)} (bf16 runs on the torch engine)"
        )
    if policy.encoder is None:
        raise EngineError("export_onnx needs a policy with an image encoder (policy.encoder)")
    c = policy.config
    if spec is not None:
        check_model_sizes(Path(source or "<policy>"), _sizes(policy), spec)
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    dtype = torch.float16 if precision == "fp16" else torch.float32
    graph = PolicyGraph(policy, dtype=dtype, fold_bn=fold_bn)
    graph.always_resize = dynamic_image_size
    images, state = _example_inputs(policy, 2, height, width)

    batch_dim = torch.export.Dim("batch", min=1, max=4096)
    image_axes: dict[int, Any] = {0: batch_dim}
    if dynamic_image_size:
        image_axes[2] = torch.export.Dim("height", min=8, max=8192)
        image_axes[3] = torch.export.Dim("width", min=8, max=8192)
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad(), contextlib.ExitStack() as stack:
        # the exporter's own chatter ("torchvision is not installed", optimiser passes)
        for name in ("torch.onnx", "onnxscript", "onnx_ir"):
            exporter_log = logging.getLogger(name)
            stack.callback(exporter_log.setLevel, exporter_log.level)
            exporter_log.setLevel(logging.ERROR)
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            graph,
            (images, state),
            dynamo=True,
            input_names=list(INPUT_NAMES),
            output_names=list(OUTPUT_NAMES),
            opset_version=opset,
            dynamic_shapes={"images": image_axes, "state": {0: batch_dim}},
            optimize=True,
            verbose=False,
            report=False,
        )
    model = program.model_proto
    meta = {
        "hpt_ros.format": SIDECAR_FORMAT,
        "hpt_ros.precision": precision,
        "hpt_ros.spec_hash": spec.spec_hash if spec is not None else "",
        "hpt_ros.trunk_sha256": policy.trunk_checksum(),
    }
    for key, value in meta.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save_model(model, str(path))

    agreement: dict[str, Any] | None = None
    if verify:
        reference = graph if precision == "fp32" else PolicyGraph(policy, fold_bn=fold_bn)
        agreement = _verify(path, reference, images, state, action_range(policy).numpy())

    batch_name = "batch"
    h_shape: Any = "height" if dynamic_image_size else height
    w_shape: Any = "width" if dynamic_image_size else width
    encoder = policy.encoder
    sidecar: dict[str, Any] = {
        "format": SIDECAR_FORMAT,
        "onnx_file": path.name,
        "onnx_sha256": file_sha256(path),
        "precision": precision,
        "opset": opset,
        "spec": None
        if spec is None
        else {"name": spec.name, "hash": spec.spec_hash, "source": str(spec.source)},
        "inputs": [
            {"name": INPUT_NAMES[0], "dtype": "uint8", "layout": "B V H W C (RGB)",
             "shape": [batch_name, c.num_views, h_shape, w_shape, 3]},
            {"name": INPUT_NAMES[1], "dtype": "float32", "layout": "B S (raw units, spec joint order)",
             "shape": [batch_name, c.state_dim]},
        ],  # fmt: skip
        "outputs": [
            {"name": OUTPUT_NAMES[0], "dtype": "float32", "layout": "B horizon A (unnormalised)",
             "shape": [batch_name, c.action_horizon, c.action_dim]},
        ],  # fmt: skip
        "sizes": {
            **_sizes(policy),
            "image_size": int(encoder.image_size),
            "embed_dim": c.embed_dim,
            "num_blocks": c.num_blocks,
            "num_heads": c.num_heads,
            "trunk_size": trunk_size_name(c.embed_dim, c.num_blocks, c.num_heads) or "custom",
        },
        "image": {
            "dynamic_size": dynamic_image_size,
            "export_height": height,
            "export_width": width,
            "preprocessing": "in-graph: bilinear resize (align_corners=False, no antialias) to "
            f"{encoder.image_size}x{encoder.image_size}, /255, ImageNet mean/std",
        },
        "robot_spec": policy.spec_fields if policy.spec_fields else (model_fields(spec) if spec else None),
        "normalizer": {
            "kind": "limits",
            "source": policy.normalizer_source,
            "action": policy.action_normalizer.stats_dict(),
            "state": policy.state_normalizer.stats_dict(),
            "normalize_state": bool(c.normalize_state),
        },
        "config": c.to_dict(),
        "trunk_sha256": policy.trunk_checksum(),
        "encoder": {
            "type": "resnet18",
            "weights_source": encoder.weights_source,
            "bn_folded": bool(fold_bn or encoder.bn_folded),
        },
        "agreement_with_torch_fp32": agreement,
        "source": source,
        "exported_with": _versions(),
        "extra": dict(extra or {}),
    }
    sidecar_path(path).write_text(yaml.safe_dump(sidecar, sort_keys=False))
    logger.info("exported %s (%s, %.1f MB) and %s", path, precision,
                path.stat().st_size / 1e6, sidecar_path(path).name)  # fmt: skip
    return path


def _sizes(policy: HPTPolicy) -> dict[str, int]:
    c = policy.config
    return {
        "state_dim": c.state_dim,
        "action_dim": c.action_dim,
        "action_horizon": c.action_horizon,
        "num_views": c.num_views,
    }


def _versions() -> dict[str, str]:
    import onnx
    import torch

    try:
        from importlib.metadata import version

        own = version("hpt_ros")
    except Exception:  # not installed (running from a checkout)
        own = "checkout"
    return {"hpt_ros": str(own), "torch": str(torch.__version__), "onnx": str(onnx.__version__)}


def _verify(path: Path, graph: Any, images: Any, state: Any, span: np.ndarray) -> dict[str, Any]:
    import onnxruntime as ort
    import torch

    options = ort.SessionOptions()
    options.log_severity_level = 3
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    got = session.run(None, {INPUT_NAMES[0]: images.numpy(), INPUT_NAMES[1]: state.numpy()})[0]
    with torch.no_grad():
        want = graph(images, state).numpy()
    diff = np.abs(got - want)
    return {
        "inputs": f"random uint8 frames {list(images.shape)}, state uniform within the state limits",
        "max_abs": float(diff.max()),
        "max_percent_of_action_range": float((diff / span).max() * 100.0),
    }


# -- command line ---------------------------------------------------------------------------------


def build_parser(prog: str = "hpt-ros export-onnx") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=prog,
        description="Export a checkpoint's whole policy (frames + state in, action chunk out) "
        "to one ONNX file with a sidecar YAML (FILE.yaml).",
    )
    parser.add_argument("checkpoint", metavar="CHECKPOINT",
                        help="hpt_ros checkpoint folder (model.safetensors + hpt.yaml)")  # fmt: skip
    parser.add_argument("--out", "-o", required=True, metavar="FILE", help="the .onnx file to write")
    parser.add_argument("--spec", metavar="ROBOT_YAML",
                        help="robot spec the model is for (dimensions checked, hash recorded)")  # fmt: skip
    parser.add_argument("--precision", choices=EXPORT_PRECISIONS, default="fp32",
                        help="fp32 (default) or fp16 (network in float16, for GPUs)")  # fmt: skip
    parser.add_argument("--height", type=int, default=480, help="example frame height (default 480)")
    parser.add_argument("--width", type=int, default=640, help="example frame width (default 640)")
    parser.add_argument("--fixed-size", action="store_true",
                        help="accept only HEIGHT x WIDTH frames (default: any size)")  # fmt: skip
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help=f"ONNX opset (default {DEFAULT_OPSET})")
    parser.add_argument("--no-verify", action="store_true", help="skip the onnxruntime check")
    return parser


def cli(argv: list[str], prog: str = "hpt-ros export-onnx") -> int:
    """``hpt-ros export-onnx CHECKPOINT --out FILE``; returns the exit status."""
    args = build_parser(prog).parse_args(argv)
    try:
        from hpt_ros.model import ModelError, load_checkpoint

        spec = None
        if args.spec:
            from hpt_ros.spec import SpecError, load_spec

            try:
                spec = load_spec(args.spec)
            except SpecError as exc:
                raise EngineError(str(exc)) from exc
        folder = Path(args.checkpoint)
        if spec is not None:
            from .model_check import load_checked_checkpoint

            policy, _ = load_checked_checkpoint(folder, spec)
        else:
            try:
                policy, _ = load_checkpoint(folder)
            except (ModelError, OSError) as exc:
                raise EngineError(str(exc)) from exc
            if policy.encoder is None:
                raise EngineError(f"{folder}: checkpoint has no image encoder; nothing to run on frames")
        out = export_onnx(
            policy,
            args.out,
            spec=spec,
            precision=args.precision,
            height=args.height,
            width=args.width,
            opset=args.opset,
            dynamic_image_size=not args.fixed_size,
            verify=not args.no_verify,
            source=str(folder),
        )
    except EngineError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"wrote {out} and {sidecar_path(out)}")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli(sys.argv[1:]))
