"""The torch engine's "aot" mode (AOTInductor, the default for bf16 on CPU): the compiled
step equals the eager one, and a second engine loads it from the cache instead of
compiling again (tiny policy, small frames; one compile, ~15 s on 2 cores)."""

from __future__ import annotations

import logging
import shutil

import numpy as np
import pytest
import torch

from hpt_ros.engine import TorchEngine, build_policy_for_spec
from hpt_ros.engine.graph import action_range
from hpt_ros.engine.torch_engine import _can_compile, action_error_percent
from hpt_ros.spec import load_spec

pytestmark = pytest.mark.skipif(not _can_compile(torch.device("cpu")), reason="no C++ compiler for AOTInductor")


def test_aot_equals_eager_and_is_cached(tmp_path, caplog):
    from conftest import ROOT

    spec = load_spec(ROOT / "config" / "robots" / "franka_fr3.yaml")
    torch.manual_seed(0)
    logging.getLogger("hpt_ros.model").setLevel(logging.ERROR)
    policy = build_policy_for_spec(spec, size="tiny", random_vision=True)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (1, 2, 48, 64, 3), dtype=np.uint8)
    lo, hi, _ = spec.joint_limits_arrays(spec.state_joints)
    state = rng.uniform(lo, hi, (1, 8)).astype(np.float32)
    span = action_range(policy).numpy()

    cache = tmp_path / "aoti"
    eager = TorchEngine(policy, precision="bf16", mode="eager", device="cpu")
    with caplog.at_level(logging.INFO, logger="hpt_ros.engine"):
        compiled = TorchEngine(policy, precision="bf16", mode="aot", device="cpu", cache_dir=cache)
        assert compiled.mode == "aot" and compiled.precision == "bf16"
        got = compiled.predict(images, state)
    assert any("compiling" in r.getMessage() for r in caplog.records)
    # same bf16 graph, compiled: the two agree far better than bf16 vs fp32 (< 1 %)
    assert action_error_percent(got, eager.predict(images, state), span) < 0.5
    packages = list(cache.glob("*.pt2"))
    assert len(packages) == 1

    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hpt_ros.engine"):
        again = TorchEngine(policy, precision="bf16", mode="aot", device="cpu", cache_dir=cache)
        np.testing.assert_array_equal(again.predict(images, state), got)
    messages = [r.getMessage() for r in caplog.records]
    assert any("loaded the compiled step" in m for m in messages)
    assert not any("compiling" in m for m in messages)
    shutil.rmtree(cache)
