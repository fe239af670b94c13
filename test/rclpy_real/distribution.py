"""Which ROS 2 wheel set this venv holds: 'jazzy' (rclpy 7, Fast DDS 2.14) or 'kilted' (rclpy 9, Fast DDS 3.2)."""

from __future__ import annotations

import importlib.metadata

_BY_RCLPY_MAJOR = {7: "jazzy", 9: "kilted"}


def ros_distribution() -> str:
    version = importlib.metadata.version("ros-rclpy")
    distribution = _BY_RCLPY_MAJOR.get(int(version.split(".")[0]))
    if distribution is None:
        raise AssertionError(f"rclpy {version}: not a wheel set the tests know ({_BY_RCLPY_MAJOR})")
    return distribution
