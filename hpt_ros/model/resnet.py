"""ResNet-18 image encoder (no torchvision needed) producing HPT's image tokens.

``ResNet18`` uses torchvision/timm parameter names (``conv1``, ``bn1``, ``layer1.0.conv1``,
``layer2.0.downsample.0``, ...), so ImageNet weights from either library load strictly
(the classifier ``fc.*`` is dropped). It returns layer4 maps [N, 512, h, w].

``ImageEncoder`` is what a policy runs on camera frames: uint8 RGB [N, H, W, 3] of any
resolution -> bilinear resize to 224x224 (``antialias=False`` so it exports to ONNX)
-> /255 -> ImageNet mean/std -> ResNet-18 -> tokens [N, 49, 512], token ``h * 7 + w``,
channels last (upstream HPT's layout). Float input is taken to be on the same 0..255
scale as uint8 (it is only cast), never 0..1.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Mapping
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .errors import CheckpointError
from .statecheck import check_state_dict

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "BasicBlock",
    "ImageEncoder",
    "ResNet18",
    "fold_batchnorm",
    "load_resnet18_weights",
    "resnet18_state",
]

logger = logging.getLogger("hpt_ros.model")

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RANDOM_WEIGHTS_WARNING = (
    "vision encoder has RANDOM weights (random_init=True): its image features carry no "
    "ImageNet knowledge, so a pretrained HPT trunk and any trained stem will see noise. "
    "Pass ResNet-18 ImageNet weights (torchvision or timm .pth/.safetensors) for real use."
)


def _conv3x3(cin: int, cout: int, stride: int = 1) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; ``downsample`` (1x1 conv + BN) when the shape changes."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = _conv3x3(cin, cout, stride)
        self.bn1: nn.Module = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = _conv3x3(cout, cout)
        self.bn2: nn.Module = nn.BatchNorm2d(cout)
        self.downsample: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.downsample = nn.Sequential(
                nn.Conv2d(cin, cout, 1, stride=stride, bias=False), nn.BatchNorm2d(cout)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + identity)


class ResNet18(nn.Module):
    """ResNet-18 up to layer4 (no pooling, no classifier)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 64, 7, stride=2, padding=3, bias=False)
        self.bn1: nn.Module = nn.BatchNorm2d(64)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        self.layer1 = nn.Sequential(BasicBlock(64, 64), BasicBlock(64, 64))
        self.layer2 = nn.Sequential(BasicBlock(64, 128, 2), BasicBlock(128, 128))
        self.layer3 = nn.Sequential(BasicBlock(128, 256, 2), BasicBlock(256, 256))
        self.layer4 = nn.Sequential(BasicBlock(256, 512, 2), BasicBlock(512, 512))
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """x [N, 3, H, W] (normalised) -> layer4 maps [N, 512, H/32, W/32]."""
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))


def load_resnet18_weights(path: str | Path) -> dict[str, torch.Tensor]:
    """ResNet-18 ImageNet weights from a local torchvision or timm file, checked strictly.

    ``.safetensors`` is read with safetensors; anything else with
    ``torch.load(weights_only=True)`` (a ``{"state_dict": ...}`` wrapper is unwrapped).
    ``fc.*`` is dropped; missing ``num_batches_tracked`` counters (old torchvision files)
    are filled with 0. Raises ``CheckpointError`` naming the file and the keys that do
    not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(path, "ResNet-18 weights file not found")
    try:
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            raw: object = load_file(str(path))
        else:
            raw = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # corrupt file, pickle with code, ...
        raise CheckpointError(path, f"cannot read ResNet-18 weights: {exc}") from exc
    if isinstance(raw, Mapping) and "state_dict" in raw and isinstance(raw["state_dict"], Mapping):
        raw = raw["state_dict"]
    if not isinstance(raw, Mapping):
        raise CheckpointError(path, f"expected a dict of tensors, got {type(raw).__name__}")
    return resnet18_state(raw, path)


def resnet18_state(raw: Mapping[str, object], source: str | Path) -> dict[str, torch.Tensor]:
    """Torchvision/timm ResNet-18 tensors ready for ``ResNet18.load_state_dict``.

    Drops ``fc.*``, fills missing ``num_batches_tracked`` with 0 and checks names and
    shapes strictly (``CheckpointError`` naming ``source``).
    """
    state = {k: v for k, v in raw.items() if not k.startswith("fc.")}
    expected = ResNet18().state_dict()  # small; building it is cheaper than listing names
    for key, value in expected.items():
        if key.endswith("num_batches_tracked") and key not in state:
            state[key] = torch.zeros_like(value)
    check_state_dict(source, state, expected, "does not hold ResNet-18 (torchvision/timm) weights")
    return {k: state[k] for k in expected}  # type: ignore[misc]


def _fold_conv_bn(conv: nn.Conv2d, bn: nn.BatchNorm2d) -> nn.Conv2d:
    """A conv (with bias) equal to ``bn(conv(x))`` with ``bn`` in eval mode."""
    # float64 so that folding itself adds no rounding beyond the final cast
    factor = bn.weight.double() / torch.sqrt(bn.running_var.double() + bn.eps)
    fused = nn.Conv2d(
        conv.in_channels, conv.out_channels, conv.kernel_size, conv.stride, conv.padding,
        conv.dilation, conv.groups, bias=True,
    )  # fmt: skip
    with torch.no_grad():
        fused.weight.copy_(conv.weight.double() * factor.reshape(-1, 1, 1, 1))
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        fused.bias.copy_((bias.double() - bn.running_mean.double()) * factor + bn.bias.double())
    return fused.to(conv.weight.device, conv.weight.dtype)


def fold_batchnorm(net: ResNet18) -> ResNet18:
    """A copy of ``net`` with every BatchNorm folded into its conv (inference only).

    Each conv gains a bias and its BN becomes ``nn.Identity``; the result equals the
    original in eval mode and has no running statistics to update.
    """
    folded = copy.deepcopy(net)
    pairs: list[tuple[nn.Module, str, str]] = [(folded, "conv1", "bn1")]
    for layer in (folded.layer1, folded.layer2, folded.layer3, folded.layer4):
        for block in layer:
            pairs += [(block, "conv1", "bn1"), (block, "conv2", "bn2")]
            if block.downsample is not None:
                pairs.append((block.downsample, "0", "1"))
    for owner, conv_name, bn_name in pairs:
        conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
        if isinstance(bn, nn.BatchNorm2d):
            setattr(owner, conv_name, _fold_conv_bn(conv, bn))
            setattr(owner, bn_name, nn.Identity())
    return folded.eval()


def seeded_resnet18(seed: int) -> ResNet18:
    """A randomly initialised ResNet-18 that depends on ``seed`` only (global RNG untouched)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return ResNet18()


@torch.no_grad()
def round_through(module: nn.Module, dtype_name: str) -> None:
    """Round a module's float parameters and buffers through a 16-bit dtype, in place."""
    dtype = {"float16": torch.float16, "bfloat16": torch.bfloat16}[dtype_name]
    for tensor in list(module.parameters()) + list(module.buffers()):
        if tensor.is_floating_point():
            tensor.copy_(tensor.to(dtype).to(tensor.dtype))


def module_sha256(module: nn.Module) -> str:
    """sha256 of a module's state (float32 bytes, state-dict order)."""
    import hashlib

    digest = hashlib.sha256()
    for value in module.state_dict().values():
        digest.update(value.detach().to("cpu").contiguous().numpy().tobytes())
    return digest.hexdigest()


class ImageEncoder(nn.Module):
    """Camera frames -> HPT image tokens with a ResNet-18 backbone.

    Args:
        weights: a local ResNet-18 weights file (see ``load_resnet18_weights``) or an
            already loaded state dict with torchvision names.
        random_init: explicitly allow random weights (tests, smoke runs). Every encoder
            built this way logs a warning on the ``hpt_ros.model`` logger.
        image_size: side of the square the frames are resized to.

    ``weights_source`` records where the weights came from ("random", a file name, ...).
    """

    def __init__(
        self,
        weights: str | Path | Mapping[str, torch.Tensor] | None = None,
        *,
        random_init: bool = False,
        image_size: int = 224,
        bn_folded: bool = False,
        seed: int | None = None,
    ) -> None:
        super().__init__()
        if weights is None and not random_init:
            raise ValueError(
                "ImageEncoder needs ResNet-18 weights (a local .pth/.safetensors file); "
                "pass random_init=True to build one with random weights on purpose"
            )
        if weights is not None and random_init:
            raise ValueError("pass either weights or random_init=True, not both")
        if bn_folded and not isinstance(weights, Mapping):
            raise ValueError("bn_folded=True is only for loading a folded state dict")
        self.image_size = image_size
        self.register_buffer(
            "mean", torch.tensor(IMAGENET_MEAN).reshape(1, 3, 1, 1), persistent=False
        )
        self.register_buffer(
            "std", torch.tensor(IMAGENET_STD).reshape(1, 3, 1, 1), persistent=False
        )
        if seed is not None and not random_init:
            raise ValueError("seed is only for random_init=True")
        #: a seeded random encoder is stored as its seed (see ``save_checkpoint``)
        self.seed = seed
        #: dtype the weights were rounded through (``round_weights``), or None
        self.round_dtype: str | None = None
        backbone = ResNet18() if seed is None else seeded_resnet18(seed)
        self.bn_folded = bn_folded
        if weights is None:
            self.weights_source = "random"
            logger.warning(RANDOM_WEIGHTS_WARNING)
        elif isinstance(weights, Mapping):
            self.weights_source = "state_dict"
            if bn_folded:  # a saved folded encoder has conv biases and no BN keys
                backbone = fold_batchnorm(backbone)
                check_state_dict("<state dict>", weights, backbone.state_dict(),
                                 "does not hold a BN-folded ResNet-18")  # fmt: skip
            else:
                weights = resnet18_state(weights, "<state dict>")
            backbone.load_state_dict(weights, strict=True)
        else:
            self.weights_source = Path(weights).name
            backbone.load_state_dict(load_resnet18_weights(weights), strict=True)
        self.backbone = backbone
        self.eval()  # BN must use running stats; training the encoder is opt-in

    @property
    def random_weights(self) -> bool:
        """True when the weights were never loaded from anywhere."""
        return self.weights_source == "random"

    def round_weights(self, dtype_name: str) -> ImageEncoder:
        """Round every float weight and buffer through ``dtype_name`` ('float16' | 'bfloat16'), in place."""
        round_through(self.backbone, dtype_name)
        self.round_dtype = dtype_name
        return self

    def weights_sha256(self) -> str:
        return module_sha256(self.backbone)

    @property
    def stored_as_seed(self) -> bool:
        """A seeded random encoder whose weights are still what its seed gives: a
        checkpoint then keeps only the seed (a few bytes instead of 45 MB)."""
        if self.seed is None or self.weights_source != "random" or self.bn_folded:
            return False
        reference = seeded_resnet18(self.seed)
        if self.round_dtype:
            round_through(reference, self.round_dtype)
        return module_sha256(reference) == self.weights_sha256()

    def fold_batchnorm(self) -> ImageEncoder:
        """A new encoder with BatchNorm folded into the convs (equal outputs in eval mode)."""
        folded = copy.deepcopy(self)
        folded.backbone = fold_batchnorm(self.backbone)
        folded.bn_folded = True
        return folded.eval()

    def preprocess(self, images: torch.Tensor) -> torch.Tensor:
        """uint8/float [N, H, W, 3] RGB on 0..255 -> normalised [N, 3, S, S] float."""
        x = images.permute(0, 3, 1, 2).to(self.mean.dtype)
        if x.shape[-2] != self.image_size or x.shape[-1] != self.image_size:
            x = F.interpolate(
                x, size=(self.image_size, self.image_size), mode="bilinear",
                align_corners=False, antialias=False,
            )  # fmt: skip
        return (x / 255.0 - self.mean) / self.std

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """images [N, H, W, 3] -> tokens [N, 49, 512] (token h * 7 + w)."""
        maps = self.backbone(self.preprocess(images))
        return maps.flatten(2).transpose(1, 2)
