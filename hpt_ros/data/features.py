"""Image features for training: the policy's ResNet-18 run on recorded frames, as the engines run it.

``FeatureExtractor(encoder)`` turns uint8 RGB frames [N, H, W, 3] (any size) into HPT
image tokens [N, 49, 512] with the same arithmetic as ``hpt_ros.engine.graph.PolicyGraph``
(what the torch engine and the ONNX export run): float32, bilinear resize to the
encoder size (``align_corners=False``, no antialias; skipped when the frame already has
it), one fused ``x * 1/(255 std) - mean/std``, BatchNorm folded into the convolutions,
channels-last memory, layer-4 map flattened to token ``h * 7 + w``.

``weights_sha256`` identifies the encoder (every backbone tensor, BatchNorm running
statistics included, in state-dict order); the feature cache is keyed by it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # pragma: no cover
    from hpt_ros.model import ImageEncoder

__all__ = ["FeatureExtractor", "encoder_sha256"]

logger = logging.getLogger("hpt_ros.data")


def encoder_sha256(encoder: ImageEncoder) -> str:
    """sha256 of the encoder's backbone tensors (float32 bytes, state-dict order) + its flags."""
    import hashlib

    import torch

    digest = hashlib.sha256()
    digest.update(f"resnet18:bn_folded={bool(encoder.bn_folded)}:".encode())
    for name, tensor in encoder.backbone.state_dict().items():
        digest.update(name.encode())
        array = tensor.detach().to("cpu", torch.float64 if tensor.dtype == torch.int64 else torch.float32)
        digest.update(array.contiguous().numpy().tobytes())
    return digest.hexdigest()


class FeatureExtractor:
    """Frames -> ResNet-18 tokens, batched, with the inference graph's arithmetic.

    Args:
        encoder: the policy's ``ImageEncoder`` (copied; left untouched).
        batch_size: frames per ResNet call.
        channels_last: channels-last memory for the convolutions (faster on CPU, same maths).
        device: where the ResNet runs (default: the encoder's device). On CUDA, TF32 is
            turned off so the features stay fp32-exact.
    """

    def __init__(self, encoder: ImageEncoder, *, batch_size: int = 32, channels_last: bool = True,
                 device: str | None = None) -> None:
        import copy

        import torch

        from hpt_ros.model import fold_batchnorm

        self.image_size = int(encoder.image_size)
        self.batch_size = int(batch_size)
        self.weights_source = str(encoder.weights_source)
        self.weights_sha256 = encoder_sha256(encoder)
        backbone = copy.deepcopy(encoder.backbone) if encoder.bn_folded else fold_batchnorm(encoder.backbone)
        self.channels_last = channels_last
        self.device = torch.device(device) if device is not None else next(encoder.parameters()).device
        if self.device.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = False
            torch.backends.cudnn.allow_tf32 = False
        self.backbone = backbone.eval().float().to(self.device)
        if channels_last:
            self.backbone = self.backbone.to(memory_format=torch.channels_last)
        for p in self.backbone.parameters():
            p.requires_grad_(False)
        mean = encoder.mean.detach().float().reshape(1, 3, 1, 1)
        std = encoder.std.detach().float().reshape(1, 3, 1, 1)
        self.pixel_scale = (1.0 / (255.0 * std)).to(self.device)
        self.pixel_shift = (-mean / std).to(self.device)

    def describe(self) -> dict[str, object]:
        """What the features depend on (part of the cache key)."""
        return {"encoder": "resnet18", "weights_sha256": self.weights_sha256, "image_size": self.image_size,
                "arithmetic": "PolicyGraph fp32, bn folded"}

    def _run(self, frames: np.ndarray) -> np.ndarray:
        import torch
        import torch.nn.functional as F

        x = torch.from_numpy(np.ascontiguousarray(frames)).to(self.device).permute(0, 3, 1, 2).float()
        size = self.image_size
        if x.shape[-2] != size or x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        x = x * self.pixel_scale + self.pixel_shift
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        maps = self.backbone(x)
        return maps.flatten(2).transpose(1, 2).contiguous().cpu().numpy()

    def __call__(self, frames: np.ndarray | Iterable[np.ndarray]) -> np.ndarray:
        """uint8 frames [N, H, W, 3] (or a list of [H, W, 3] of possibly different sizes) -> float32 [N, 49, 512]."""
        import torch

        items = list(frames) if not isinstance(frames, np.ndarray) else frames
        count = len(items)
        if count == 0:
            return np.zeros((0, 49, 512), np.float32)
        out: np.ndarray | None = None
        with torch.inference_mode():
            start = 0
            while start < count:
                stop = min(start + self.batch_size, count)
                chunk = items[start:stop]
                if isinstance(chunk, list):
                    shapes = {f.shape for f in chunk}
                    if len(shapes) > 1:  # frames of several sizes: one call per size
                        stop = start + next(i for i, f in enumerate(chunk) if f.shape != chunk[0].shape)
                        chunk = chunk[: stop - start]
                    chunk = np.stack(chunk)
                tokens = self._run(chunk)
                if out is None:
                    out = np.empty((count,) + tokens.shape[1:], np.float32)
                out[start:stop] = tokens
                start = stop
        assert out is not None
        return out
