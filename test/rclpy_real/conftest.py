"""Tests that run against real rclpy (the ROS 2 wheels of ``scripts/install_ros_wheels.sh``).

They run in the ROS venv: ``.venv-jazzy/bin/python -m pytest test/rclpy_real``, which the
main run does from ``test/test_rclpy_real.py``. Where rclpy cannot be imported (the main
venv) nothing here is collected. The DDS loopback configuration of the package is applied
before any participant exists, and a ROS_DOMAIN_ID of its own keeps the run apart from
other DDS traffic on the host.
"""

from __future__ import annotations

import importlib.util
import os

if importlib.util.find_spec("rclpy") is None:
    collect_ignore_glob = ["test_*.py"]
else:
    from hpt_ros.ros.dds_config import ensure_dds_config

    os.environ.setdefault("ROS_DOMAIN_ID", str(200 + os.getpid() % 32))
    ensure_dds_config()


if importlib.util.find_spec("rclpy") is not None:
    import pytest

    @pytest.fixture
    def tiny_model(tmp_path, franka_spec, tiny_policy):
        """A checkpoint of the tiny random policy for the Franka spec."""
        from hpt_ros.model import save_checkpoint

        path = tmp_path / "tiny_model"
        save_checkpoint(path, tiny_policy, {"robot": franka_spec.name})
        return path
