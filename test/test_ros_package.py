"""hpt_ros.ros imports lazily: no middleware (cyclonedds, rclpy) and no OpenCV at import time."""

from __future__ import annotations

import pathlib
import subprocess
import sys

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_importing_the_ros_layer_loads_no_middleware() -> None:
    code = (
        "import sys, hpt_ros.ros, hpt_ros.msgs.messages, hpt_ros.ros.rclpy_transport, hpt_ros.ros.dds_config;"
        "print(sorted(m for m in ('cyclonedds', 'rclpy', 'cv2') if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_public_names_are_exported() -> None:
    import hpt_ros.ros as ros
    from hpt_ros.msgs import messages

    for module in (ros, messages):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
