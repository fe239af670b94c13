"""ONNX export and the onnxruntime engine, on a tiny policy with small frames: the file runs
in onnxruntime and matches torch, the batch is dynamic, the sidecar says what it should,
provider fallback is one log line, and ``hpt-ros export-onnx`` works end to end."""

from __future__ import annotations

import copy
import logging

import numpy as np
import onnx
import pytest
from conftest import (
    VIEW_ORDER_TOLERANCE,
    distinct_view_inputs,
    engine_inputs,
    reference_actions,
    swapped_views,
    view_order_error,
)
import yaml

from hpt_ros.engine import EngineError, OnnxEngine, export_onnx, load_engine, sidecar_path
from hpt_ros.engine import export as export_module
from hpt_ros.engine import onnx_engine
from hpt_ros.engine.factory import SpecMismatchError
from hpt_ros.engine.graph import action_range
from hpt_ros.engine.torch_engine import action_error_percent
from hpt_ros.model import save_checkpoint
from hpt_ros.spec import parse_spec
from hpt_ros.spec.compat import model_fields

CPU_ONLY = ["CPUExecutionProvider"]


@pytest.fixture(scope="module")
def spec(franka_spec):
    return franka_spec


@pytest.fixture(scope="module")
def policy(tiny_policy):
    return tiny_policy


@pytest.fixture(scope="module")
def exported(policy, spec, tmp_path_factory):
    return export_onnx(policy, tmp_path_factory.mktemp("onnx") / "tiny.onnx", spec=spec, height=48, width=64)


def inputs(spec, batch=1, height=48, width=64, seed=0):
    return engine_inputs(spec, batch, height, width, seed)


reference = reference_actions


# Largest difference between onnxruntime and torch accepted, as % of the action range;
# measured: ~1e-4 % (a few 1e-6 in absolute terms, float32 rounding).
ATOL_PERCENT = 1e-3


@pytest.mark.parametrize("batch", [1, 3])
def test_onnx_matches_torch_with_dynamic_batch(policy, spec, exported, batch):
    engine = OnnxEngine(exported, providers=CPU_ONLY)
    span = action_range(policy).numpy()
    images, state = inputs(spec, batch=batch, seed=batch)
    got = engine.predict(images, state)
    assert got.shape == (batch, spec.action.horizon, spec.action.dim) and got.dtype == np.float32
    assert action_error_percent(got, reference(policy, images, state), span) < ATOL_PERCENT


def test_torch_and_onnxruntime_engines_agree(policy, spec, exported):
    from hpt_ros.engine import TorchEngine

    images, state = inputs(spec, batch=2, height=480 // 8, width=640 // 8, seed=7)
    span = action_range(policy).numpy()
    a = OnnxEngine(exported, providers=CPU_ONLY).predict(images, state)
    b = TorchEngine(policy, device="cpu", mode="trace").predict(images, state)
    assert action_error_percent(a, b, span) < ATOL_PERCENT


def test_onnx_takes_other_frame_sizes(policy, spec, exported):
    engine = OnnxEngine(exported, providers=CPU_ONLY)
    images, state = inputs(spec, height=30, width=90)
    span = action_range(policy).numpy()
    assert action_error_percent(engine.predict(images, state), reference(policy, images, state), span) < ATOL_PERCENT
    # frames already at the encoder size (224) go through an exact identity resize
    images, state = inputs(spec, height=224, width=224)
    assert action_error_percent(engine.predict(images, state), reference(policy, images, state), span) < ATOL_PERCENT


def test_onnx_file_inputs_outputs(exported, spec):
    model = onnx.load(str(exported))
    names = [i.name for i in model.graph.input]
    assert names == ["images", "state"]
    assert [o.name for o in model.graph.output] == ["actions"]
    images = model.graph.input[0].type.tensor_type
    assert images.elem_type == onnx.TensorProto.UINT8
    dims = [d.dim_value or d.dim_param for d in images.shape.dim]
    assert isinstance(dims[0], str) and dims[1] == spec.num_views and dims[4] == 3
    meta = {p.key: p.value for p in model.metadata_props}
    assert meta["hpt_ros.spec_hash"] == spec.spec_hash


def test_sidecar_content(policy, spec, exported):
    side = yaml.safe_load(sidecar_path(exported).read_text())
    assert sidecar_path(exported).name == "tiny.onnx.yaml"
    assert side["format"] == export_module.SIDECAR_FORMAT
    assert side["onnx_file"] == "tiny.onnx"
    assert side["onnx_sha256"] == export_module.file_sha256(exported)
    assert side["precision"] == "fp32"
    assert side["spec"]["hash"] == spec.spec_hash and side["spec"]["name"] == "franka_fr3"
    assert [i["name"] for i in side["inputs"]] == ["images", "state"]
    assert side["inputs"][0]["shape"] == ["batch", 2, "height", "width", 3]
    assert side["inputs"][0]["dtype"] == "uint8"
    assert side["inputs"][1]["shape"] == ["batch", 8]
    assert side["outputs"] == [
        {"name": "actions", "dtype": "float32", "layout": "B horizon A (unnormalised)", "shape": ["batch", 8, 8]}
    ]
    assert side["sizes"] == {
        "state_dim": 8, "action_dim": 8, "action_horizon": 8, "num_views": 2, "image_size": 224,
        "embed_dim": 64, "num_blocks": 2, "num_heads": 4, "trunk_size": "custom",
    }  # fmt: skip
    assert side["normalizer"]["action"] == policy.action_normalizer.stats_dict()
    assert side["normalizer"]["state"] == policy.state_normalizer.stats_dict()
    assert side["normalizer"]["source"] == "joint limits of robot spec 'franka_fr3'"
    assert side["robot_spec"] == model_fields(spec)
    assert side["trunk_sha256"] == policy.trunk_checksum()
    assert side["config"] == policy.config.to_dict()
    assert side["agreement_with_torch_fp32"]["max_percent_of_action_range"] < ATOL_PERCENT


def test_provider_fallback_is_one_log_line(exported, monkeypatch, caplog):
    # Make the GPU providers unavailable the same way on any machine.
    monkeypatch.setattr(onnx_engine, "_cuda_device_problem", lambda: "no CUDA device (test)")
    with caplog.at_level(logging.DEBUG, logger="hpt_ros.engine"):
        engine = OnnxEngine(exported)
    lines = [r for r in caplog.records if r.name.startswith("hpt_ros")]
    assert len(lines) == 1, [r.getMessage() for r in lines]
    message = lines[0].getMessage()
    assert lines[0].levelno == logging.WARNING
    import onnxruntime as ort

    for provider in ("TensorrtExecutionProvider", "CUDAExecutionProvider"):
        assert provider in message
        assert ("no CUDA device (test)" if provider in ort.get_available_providers() else "not in this") in message
    assert "CPUExecutionProvider" in message
    assert engine.providers == ["CPUExecutionProvider"]
    # asking for CPU only is not a fallback: nothing logged
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="hpt_ros.engine"):
        OnnxEngine(exported, providers=CPU_ONLY)
    assert not [r for r in caplog.records if r.name.startswith("hpt_ros")]


def test_fp16_export_within_tolerance_and_sees_a_view_swap(policy, spec, tmp_path):
    with pytest.raises(EngineError, match="bf16"):
        export_onnx(policy, tmp_path / "x.onnx", precision="bf16")
    path = export_onnx(policy, tmp_path / "half.onnx", spec=spec, precision="fp16", height=48, width=64)
    model = onnx.load(str(path))
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in model.graph.initializer)
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.UINT8
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    engine = OnnxEngine(path, providers=CPU_ONLY)
    assert engine.precision == "fp16"
    span = action_range(policy).numpy()
    for seed in range(2):
        images, state = inputs(spec, batch=2, seed=seed)
        # measured ~0.05 % (fp16 keeps 3 more mantissa bits than bf16); a view swap moves ~0.3 %
        assert action_error_percent(engine.predict(images, state), reference(policy, images, state), span) < 0.2
    images, state = distinct_view_inputs(spec, batch=2)
    assert view_order_error(engine.predict, policy, images, state) < VIEW_ORDER_TOLERANCE

    def swapping(images, state):  # the bug the tolerance must not hide: cameras in the wrong order
        return engine.predict(swapped_views(images), state)

    assert view_order_error(swapping, policy, images, state) > 3 * VIEW_ORDER_TOLERANCE
    assert action_error_percent(swapping(images, state), reference(policy, images, state), span) > 0.2


def test_sidecar_problems_are_clear(exported, tmp_path):
    lone = tmp_path / "lone.onnx"
    lone.write_bytes(exported.read_bytes())
    with pytest.raises(EngineError, match="sidecar lone.onnx.yaml is missing"):
        OnnxEngine(lone)
    sidecar_path(lone).write_text(sidecar_path(exported).read_text().replace("onnx_sha256: ", "onnx_sha256: 00"))
    with pytest.raises(EngineError, match="sha256 differs"):
        OnnxEngine(lone)


def test_export_cli_end_to_end(policy, spec, tmp_path, capsys, caplog):
    from conftest import ROOT

    from hpt_ros.cli import main

    folder = save_checkpoint(tmp_path / "ckpt", policy)
    out = tmp_path / "out" / "policy.onnx"
    status = main(["export-onnx", str(folder), "--out", str(out), "--spec",
                   str(ROOT / "config" / "robots" / "franka_fr3.yaml"), "--height", "48", "--width", "64"])  # fmt: skip
    assert status == 0, capsys.readouterr().err
    assert out.is_file() and sidecar_path(out).is_file()
    assert "wrote" in capsys.readouterr().out
    side = yaml.safe_load(sidecar_path(out).read_text())
    assert side["source"] == str(folder) and side["spec"]["hash"] == spec.spec_hash
    # the file loads through load_engine and agrees with the checkpoint's policy
    engine = load_engine(out, spec, providers=CPU_ONLY)
    assert engine.backend == "onnxruntime"
    images, state = inputs(spec, batch=2)
    span = action_range(policy).numpy()
    assert action_error_percent(engine.predict(images, state), reference(policy, images, state), span) < ATOL_PERCENT
    # a missing checkpoint is an error message and exit status 1, not a traceback
    assert main(["export-onnx", str(tmp_path / "nothing"), "--out", str(tmp_path / "x.onnx")]) == 1
    assert "nothing" in capsys.readouterr().err


def test_load_engine_rejects_onnx_that_does_not_fit_spec(exported, spec, tmp_path):
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(exported.read_bytes())
    side = yaml.safe_load(sidecar_path(exported).read_text())
    side["sizes"]["action_dim"] = 7
    sidecar_path(bad).write_text(yaml.safe_dump(side))
    with pytest.raises(EngineError) as info:
        load_engine(bad, spec)
    assert str(bad) in str(info.value) and "action_dim 7" in str(info.value)


def test_load_engine_refuses_onnx_made_for_other_joint_order_unless_allowed(exported, spec, caplog):
    raw = copy.deepcopy(spec.raw)
    joints = raw["action"]["joints"]
    joints[0], joints[6] = joints[6], joints[0]
    reordered = parse_spec(raw, "<reordered>")
    with pytest.raises(SpecMismatchError) as info:
        load_engine(exported, reordered)
    assert str(exported) in str(info.value) and "action joints in another order" in str(info.value)
    with caplog.at_level(logging.WARNING, logger="hpt_ros.engine"):
        engine = load_engine(exported, reordered, allow_spec_mismatch=True)
    assert engine.backend == "onnxruntime"
    assert any("SPEC MISMATCH ALLOWED" in r.getMessage() for r in caplog.records)
