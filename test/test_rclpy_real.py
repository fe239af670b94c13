"""Runs ``test/rclpy_real`` (the rclpy transport and nodes on real rclpy) in each ROS 2 wheel venv:
Jazzy (rclpy 7.1, Fast DDS 2.14) and Kilted (rclpy 9.1, Fast DDS 3.2).

The main venv has no rclpy, so those tests run in their own interpreter; this test is
how ``pytest`` in the main venv covers them. A failure shows the inner run's report.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from ros_venvs import DISTRIBUTIONS, ROOT, ros_python


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_rclpy_suite_passes_on_real_rclpy(distribution: str) -> None:
    python = ros_python(distribution)
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    env.pop("ROS_DOMAIN_ID", None)  # the inner conftest picks its own
    result = subprocess.run(
        [str(python), "-m", "pytest", "-q", "-rfEs", "-p", "no:cacheprovider", "-W", "ignore::DeprecationWarning",
         "test/rclpy_real"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=900)
    report = (result.stdout + result.stderr)[-6000:]
    print(report)
    assert result.returncode == 0, f"the real-rclpy tests failed on {distribution} (rc {result.returncode}):\n{report}"
    assert " passed" in result.stdout and " skipped" not in result.stdout, report
