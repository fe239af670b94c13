"""The whole inference step as one module: raw frames + raw state -> raw action chunk.

``PolicyGraph`` is what both engines run (the torch engine directly, the onnxruntime
engine through ``export_onnx``):

    uint8 [B, V, H, W, 3] --permute (a view: NHWC memory = channels-last NCHW)--> float32
      --bilinear resize to the encoder size (align_corners=False, no antialias; skipped
        when the frames already have that size)--> x * 1/(255 std) - mean/std (one fused
        multiply-add: the /255 and ImageNet normalisation in one step)
      --> ResNet-18 (BatchNorm folded into the convs) --> tokens [B, V, 49, 512]
    float32 [B, S] --limits normaliser (fp32)-->
      stems -> trunk (the policy's own ``forward_features``, in the core dtype) -> head (fp32)
      --> normalised chunk --unnormalise (fp32)--> float32 [B, horizon, action_dim]

Pre-processing is done once for all views of all samples, in float32, inside the graph:
it is the policy's own pre-processing (exact), it keeps the exported ONNX file
self-contained, and on a GPU it runs there. On CPU, ``bench/bench_inference.py`` measures
it at ~0.7 ms for two 640x480 views, against ~0.3 ms for ``cv2.resize`` on uint8 frames
(which rounds the resized pixels); the torch engine takes the cv2 path for reduced
precision (``TorchEngine(resize=...)``). The action head and the normalisers always run
in float32, so a reduced compute dtype only touches the ResNet, stems and trunk (where
the FLOPs are), never the last layer or the units of the actions.
"""

from __future__ import annotations

import copy

import torch
import torch.nn.functional as F
from torch import nn

from hpt_ros.model import HPTPolicy, LimitsNormalizer, fold_batchnorm

__all__ = ["Float32Head", "PolicyGraph", "action_range"]


def action_range(policy: HPTPolicy) -> torch.Tensor:
    """Per-dimension span of the actions the head's [-1, 1] output maps onto (= max - min)."""
    return (2.0 / policy.action_normalizer.scale.detach().double()).float()


class Float32Head(nn.Module):
    """Runs an action head in float32 whatever the dtype of the pooled feature."""

    def __init__(self, head: nn.Module) -> None:
        super().__init__()
        self.head = head.float()

    def forward(self, feature: torch.Tensor) -> torch.Tensor:
        return self.head(feature.float())


class PolicyGraph(nn.Module):
    """One HPT inference step, built from an ``HPTPolicy`` with an encoder (a copy; the
    policy is left untouched).

    Args:
        policy: the policy; needs ``policy.encoder``.
        dtype: compute dtype of the ResNet-18 encoder (float32, bfloat16 or float16).
        core_dtype: compute dtype of the stems and trunk (default: ``dtype``). The action
            head, inputs, pre-processing, normalisers and the output always stay float32.
        fold_bn: fold BatchNorm into the convs (equal in eval mode, fewer ops).
        channels_last: keep the ResNet's activations in channels-last memory order.
    """

    def __init__(
        self,
        policy: HPTPolicy,
        *,
        dtype: torch.dtype = torch.float32,
        core_dtype: torch.dtype | None = None,
        fold_bn: bool = True,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        encoder = policy.encoder
        if encoder is None:
            raise ValueError("PolicyGraph needs a policy with an image encoder (policy.encoder)")
        config = policy.config
        self.config = config
        self.dtype = dtype
        self.core_dtype = dtype if core_dtype is None else core_dtype
        self.channels_last = channels_last
        self.image_size = int(encoder.image_size)
        #: resize even frames that already have the encoder size (an exact copy then);
        #: set for exports with a dynamic image size, where the test cannot be in Python
        self.always_resize = False

        # The policy without its encoder, with identity normalisers: the normalisers run
        # here, in float32, around it.
        policy.encoder = None
        try:
            core = copy.deepcopy(policy)
        finally:
            policy.encoder = encoder
        domain = core.normalizer[config.domain]
        domain.params_dict["action"] = LimitsNormalizer(config.action_dim)
        domain.params_dict["state"] = LimitsNormalizer(config.state_dim)
        core.config = config.replace(action_relative=False)  # the offset is added here, to the raw state
        core = core.eval().to(self.core_dtype)
        if self.core_dtype != torch.float32:
            # The head is ~0.1 MFLOP but, in 16 bits, the largest single source of action
            # error (its output is the action): it always runs in float32.
            core.heads[config.domain] = Float32Head(core.heads[config.domain])
        self.core = core

        backbone = encoder.backbone
        if fold_bn and not encoder.bn_folded:
            backbone = fold_batchnorm(backbone)
        else:
            backbone = copy.deepcopy(backbone)
        backbone = backbone.eval().to(dtype)
        if channels_last:
            backbone = backbone.to(memory_format=torch.channels_last)
        self.backbone = backbone

        mean = encoder.mean.detach().float().reshape(1, 3, 1, 1)
        std = encoder.std.detach().float().reshape(1, 3, 1, 1)
        self.register_buffer("pixel_scale", 1.0 / (255.0 * std))
        self.register_buffer("pixel_shift", -mean / std)
        state_norm = policy.state_normalizer
        self.normalize_state = bool(config.normalize_state)
        self.action_relative = bool(config.action_relative)
        self.register_buffer("state_scale", state_norm.scale.detach().float().clone())
        self.register_buffer("state_offset", state_norm.offset.detach().float().clone())
        action_norm = policy.action_normalizer
        self.register_buffer("action_scale", action_norm.scale.detach().float().clone())
        self.register_buffer("action_offset", action_norm.offset.detach().float().clone())
        self.eval()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, V, H, W, 3] -> normalised float32 [B * V, 3, S, S] (channels-last memory)."""
        batch, views, height, width, channels = images.shape
        x = images.reshape(batch * views, height, width, channels).permute(0, 3, 1, 2).float()
        size = self.image_size
        if self.always_resize or height != size or width != size:
            x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
        return x * self.pixel_scale + self.pixel_shift

    def encode(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 [B, V, H, W, 3] -> ResNet-18 tokens [B, V, 49, 512] in the core's dtype."""
        batch, views = images.shape[0], images.shape[1]
        x = self.preprocess(images).to(self.dtype)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        maps = self.backbone(x)  # [B * V, 512, 7, 7]
        tokens = maps.flatten(2).transpose(1, 2)  # [B * V, 49, 512], token h * 7 + w
        tokens = tokens.reshape(batch, views, tokens.shape[1], tokens.shape[2])
        return tokens.to(self.core_dtype)

    def forward(self, images: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
        """images uint8 [B, V, H, W, 3], state float32 [B, S] -> actions float32 [B, horizon, A]."""
        features = self.encode(images)
        raw_state = state.float()
        state = raw_state * self.state_scale + self.state_offset if self.normalize_state else raw_state
        normalized = self.core.forward_features(features, state.to(self.core_dtype))
        action = (normalized.float() - self.action_offset) / self.action_scale
        return action + raw_state[:, None, :] if self.action_relative else action
