"""The closed loop over real DDS between processes: fake FR3 arm, fake cameras, policy node,
all on the ``dds`` transport (the scenario is in ``closed_loop.py``; the same runs under real
rclpy in ``rclpy_real/test_closed_loop_rclpy.py``).

Here also: commands come at the spec's rate, within a generous factor (their stamps; speed
itself is the benchmarks' job).
"""

from __future__ import annotations

import os

import numpy as np

from closed_loop import run_closed_loop

RATE_HZ = 10.0


def test_closed_loop_over_dds(tmp_path, monkeypatch, franka_spec_path):
    from hpt_ros.engine.factory import build_policy_for_spec
    from hpt_ros.model import save_checkpoint
    from hpt_ros.spec import load_spec

    spec = load_spec(franka_spec_path)
    model = tmp_path / "tiny_model"
    save_checkpoint(model, build_policy_for_spec(spec, "tiny", random_vision=True), {"robot": spec.name})
    monkeypatch.setenv("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))

    loop = run_closed_loop(tmp_path, spec, model, robot_stack="dds", policy_stack="dds", watcher_stack="dds",
                           rate_hz=RATE_HZ)
    # the spec's rate and not another: a generous bound (a loaded machine may skip a tick now and then)
    periods = np.diff(loop.enabled_stamps) * RATE_HZ
    assert (periods > 0).all() and 0.5 <= np.median(periods) <= 2.0, periods
