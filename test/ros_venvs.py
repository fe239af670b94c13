"""Where the ROS 2 wheel venvs of ``scripts/install_ros_wheels.sh`` are, for the tests that need them.

``.venv-jazzy`` (rclpy 7.1, Fast DDS 2.14, with hpt_ros) and ``.venv-kilted`` (rclpy 9.1,
Fast DDS 3.2) beside the checkout, or the venvs named by HPT_ROS_JAZZY_VENV /
HPT_ROS_KILTED_VENV. A missing venv skips the test, saying how to make it; under
``CI=true`` it is a failure.
"""

from __future__ import annotations

import os
import pathlib

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
DISTRIBUTIONS = ("jazzy", "kilted")


def ros_python(distribution: str) -> pathlib.Path:
    """The Python of the ``distribution`` venv; skip (or fail under CI=true) when it is missing."""
    venv = pathlib.Path(os.environ.get(f"HPT_ROS_{distribution.upper()}_VENV", ROOT / f".venv-{distribution}"))
    python = venv if venv.name.startswith("python") else venv / "bin" / "python"
    if not python.is_absolute():
        python = ROOT / python
    if not os.access(python, os.X_OK):
        message = (f"no ROS 2 {distribution} venv at {venv}: make it with "
                   f"scripts/install_ros_wheels.sh {distribution}")
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {message}")
        pytest.skip(message)
    return python
