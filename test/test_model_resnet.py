"""ResNet-18 image encoder: torchvision/timm weight files, BN folding, token layout."""

from __future__ import annotations

import logging

import pytest
import torch
from safetensors.torch import save_file

from hpt_ros.model import (
    CheckpointError,
    ImageEncoder,
    ResNet18,
    fold_batchnorm,
    load_resnet18_weights,
)


def torchvision_resnet18_shapes() -> dict[str, tuple[int, ...]]:
    """Key names and shapes of torchvision's resnet18().state_dict(), written out by hand."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix: str, c: int) -> None:
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)
        shapes[f"{prefix}.num_batches_tracked"] = ()

    shapes["conv1.weight"] = (64, 3, 7, 7)
    bn("bn1", 64)
    cin = 64
    for layer, cout in zip((1, 2, 3, 4), (64, 128, 256, 512)):
        for block in (0, 1):
            p = f"layer{layer}.{block}"
            shapes[f"{p}.conv1.weight"] = (cout, cin if block == 0 else cout, 3, 3)
            bn(f"{p}.bn1", cout)
            shapes[f"{p}.conv2.weight"] = (cout, cout, 3, 3)
            bn(f"{p}.bn2", cout)
            if block == 0 and layer > 1:
                shapes[f"{p}.downsample.0.weight"] = (cout, cin, 1, 1)
                bn(f"{p}.downsample.1", cout)
        cin = cout
    shapes["fc.weight"] = (1000, 512)
    shapes["fc.bias"] = (1000,)
    return shapes


def random_torchvision_state(seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for key, shape in torchvision_resnet18_shapes().items():
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g) + 0.5
        elif key.endswith("weight") and len(shape) == 4:
            fan_in = shape[1] * shape[2] * shape[3]
            state[key] = torch.randn(shape, generator=g) * (2.0 / fan_in) ** 0.5
        elif key.endswith("weight") and len(shape) == 1:  # BN gamma
            state[key] = 1.0 + torch.randn(shape, generator=g) * 0.1
        else:
            state[key] = torch.randn(shape, generator=g) * 0.1
    return state


def test_key_list_is_torchvision_resnet18():
    shapes = torchvision_resnet18_shapes()
    buffers = ("running_mean", "running_var", "num_batches_tracked")
    params = [k for k in shapes if not k.endswith(buffers)]
    assert len(params) == 62 and len(shapes) == 122  # 20 convs, 20 BNs, fc
    ours = {k: tuple(v.shape) for k, v in ResNet18().state_dict().items()}
    assert ours == {k: v for k, v in shapes.items() if not k.startswith("fc.")}


def test_torchvision_pth_loads(tmp_path):
    state = random_torchvision_state()
    torch.save(state, tmp_path / "resnet18.pth")
    loaded = load_resnet18_weights(tmp_path / "resnet18.pth")
    assert len(loaded) == 120 and not any(k.startswith("fc.") for k in loaded)
    encoder = ImageEncoder(tmp_path / "resnet18.pth")
    assert encoder.weights_source == "resnet18.pth" and not encoder.random_weights
    loaded_var = encoder.backbone.layer4[1].bn2.running_var
    assert torch.equal(loaded_var, state["layer4.1.bn2.running_var"])


def test_timm_safetensors_without_batch_counters_loads(tmp_path):
    state = {
        k: v
        for k, v in random_torchvision_state(1).items()
        if not k.endswith("num_batches_tracked")
    }
    save_file(state, str(tmp_path / "model.safetensors"))
    loaded = load_resnet18_weights(tmp_path / "model.safetensors")
    assert torch.equal(loaded["conv1.weight"], state["conv1.weight"])
    assert int(loaded["bn1.num_batches_tracked"]) == 0


def test_wrong_weights_file_names_file_and_keys(tmp_path):
    state = random_torchvision_state()
    state["layer4.1.bn2.gamma"] = state.pop("layer4.1.bn2.weight")
    state["layer1.0.conv1.weight"] = torch.zeros(64, 64, 1, 1)
    torch.save(state, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as info:
        load_resnet18_weights(tmp_path / "bad.pth")
    err = info.value
    assert err.file == tmp_path / "bad.pth"
    assert err.missing == ["layer4.1.bn2.weight"] and err.unexpected == ["layer4.1.bn2.gamma"]
    assert err.mismatched == [("layer1.0.conv1.weight", (64, 64, 1, 1), (64, 64, 3, 3))]
    with pytest.raises(CheckpointError, match="not found"):
        load_resnet18_weights(tmp_path / "nope.pth")


def test_encoder_requires_explicit_random_init():
    with pytest.raises(ValueError, match="random_init=True"):
        ImageEncoder()


def test_random_init_warns_every_time(caplog):
    with caplog.at_level(logging.WARNING, logger="hpt_ros.model"):
        ImageEncoder(random_init=True)
        ImageEncoder(random_init=True)
    warnings = [r for r in caplog.records if "RANDOM weights" in r.getMessage()]
    assert len(warnings) == 2 and all(r.name == "hpt_ros.model" for r in warnings)


@pytest.fixture(scope="module")
def encoder() -> ImageEncoder:
    """Random weights with BN statistics calibrated on random frames, so activations
    have trained-network magnitudes (uncalibrated random stats blow up to ~1e2-1e3)."""
    enc = ImageEncoder(random_torchvision_state(2))
    for module in enc.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batch
    enc.train()
    with torch.no_grad():
        gen = torch.Generator().manual_seed(3)
        enc(torch.randint(0, 256, (8, 224, 224, 3), dtype=torch.uint8, generator=gen))
    return enc.eval()


@pytest.mark.parametrize(("height", "width"), [(480, 640), (224, 224), (120, 90)])
def test_tokens_shape_for_any_resolution(encoder, height, width):
    images = torch.randint(0, 256, (2, height, width, 3), dtype=torch.uint8)
    with torch.no_grad():
        tokens = encoder(images)
    assert tokens.shape == (2, 49, 512) and tokens.dtype == torch.float32


def test_token_layout_is_h_times_7_plus_w_channels_last(encoder):
    images = torch.randint(0, 256, (1, 224, 224, 3), dtype=torch.uint8)
    with torch.no_grad():
        maps = encoder.backbone(encoder.preprocess(images))
        tokens = encoder(images)
    assert maps.shape == (1, 512, 7, 7)
    assert torch.equal(tokens[0, 3 * 7 + 5], maps[0, :, 3, 5])


def test_float_input_is_on_the_uint8_scale(encoder):
    images = torch.randint(0, 256, (1, 100, 100, 3), dtype=torch.uint8)
    with torch.no_grad():
        assert torch.equal(encoder(images), encoder(images.float()))


def test_preprocess_normalises_with_imagenet_stats(encoder):
    white = torch.full((1, 224, 224, 3), 255, dtype=torch.uint8)
    x = encoder.preprocess(white)
    expected = (1 - torch.tensor([0.485, 0.456, 0.406])) / torch.tensor([0.229, 0.224, 0.225])
    torch.testing.assert_close(x[0, :, 0, 0], expected)


def test_folded_batchnorm_equals_unfolded(encoder):
    folded = encoder.fold_batchnorm()
    assert folded.bn_folded and not encoder.bn_folded
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in folded.modules())
    gen = torch.Generator().manual_seed(4)
    images = torch.randint(0, 256, (2, 240, 320, 3), dtype=torch.uint8, generator=gen)
    with torch.no_grad():
        a, b = encoder(images), folded(images)
    # For scale: this fp32 network itself is ~5e-4 away from its float64 result here;
    # folding (done in float64) adds ~7e-5.
    err = float((a - b).abs().max())
    print(f"folded vs unfolded max abs err {err:.3g} (outputs up to {float(a.abs().max()):.3g})")
    assert err <= 1e-4


def test_fold_batchnorm_leaves_the_original_alone():
    net = ResNet18().eval()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    fold_batchnorm(net)
    assert all(torch.equal(before[k], v) for k, v in net.state_dict().items())


# -- forward pass against an independent implementation --------------------------------------------

def reference_resnet18_tokens(state: dict[str, torch.Tensor], images: torch.Tensor) -> torch.Tensor:
    """torchvision's ResNet-18 (He et al. 2016, v1.5: stride on the 3x3 conv) written out with
    functional ops in float64 from a torchvision-named state dict; uint8 [N, 224, 224, 3] -> [N, 49, 512]."""
    import torch.nn.functional as F

    s = {k: v.double() for k, v in state.items() if v.is_floating_point()}

    def bn(x: torch.Tensor, prefix: str) -> torch.Tensor:
        scale = s[f"{prefix}.weight"] / torch.sqrt(s[f"{prefix}.running_var"] + 1e-5)
        shift = s[f"{prefix}.bias"] - s[f"{prefix}.running_mean"] * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]

    mean = torch.tensor([0.485, 0.456, 0.406], dtype=torch.float64)[None, :, None, None]
    std = torch.tensor([0.229, 0.224, 0.225], dtype=torch.float64)[None, :, None, None]
    x = (images.permute(0, 3, 1, 2).double() / 255.0 - mean) / std
    x = F.relu(bn(F.conv2d(x, s["conv1.weight"], stride=2, padding=3), "bn1"))
    x = F.max_pool2d(x, kernel_size=3, stride=2, padding=1)
    for layer in (1, 2, 3, 4):
        for block in (0, 1):
            p = f"layer{layer}.{block}"
            stride = 2 if layer > 1 and block == 0 else 1
            out = F.relu(bn(F.conv2d(x, s[f"{p}.conv1.weight"], stride=stride, padding=1), f"{p}.bn1"))
            out = bn(F.conv2d(out, s[f"{p}.conv2.weight"], padding=1), f"{p}.bn2")
            if f"{p}.downsample.0.weight" in s:
                x = bn(F.conv2d(x, s[f"{p}.downsample.0.weight"], stride=stride), f"{p}.downsample.1")
            x = F.relu(out + x)
    return x.flatten(2).transpose(1, 2)  # [N, 49, 512], token h * 7 + w


def test_forward_equals_an_independent_resnet18(encoder):
    gen = torch.Generator().manual_seed(5)
    images = torch.randint(0, 256, (2, 224, 224, 3), dtype=torch.uint8, generator=gen)
    state = {k: v for k, v in encoder.backbone.state_dict().items()}
    with torch.no_grad():
        ours = encoder(images).double()
        reference = reference_resnet18_tokens(state, images)
        folded = encoder.fold_batchnorm()(images).double()
    scale = float(reference.abs().max())
    err, folded_err = float((ours - reference).abs().max()), float((folded - reference).abs().max())
    print(f"ResNet-18 vs float64 reference: max abs err {err:.3g}, folded {folded_err:.3g} (outputs up to {scale:.3g})")
    assert scale > 0.1 and float(reference.std()) > 0.01  # not a dead network: the comparison means something
    # fp32 vs float64 over 20 convs (see the folding test): ~5e-4 of absolute error at this scale
    assert err <= 5e-4 and folded_err <= 5e-4
