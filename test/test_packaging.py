"""The package is a real ament_python package: ``colcon build`` installs it the ROS 2 way.

colcon comes from PyPI (the dev extra), so this runs without a ROS 2 install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from conftest import ROOT

EXECUTABLES = ("policy_node", "policy_lifecycle_node", "teleop_recorder", "fake_robot", "scripted_teleop",
               "replay_eval", "hpt-ros")
_SKIP = shutil.ignore_patterns(".git", ".venv", ".venv-*", "build", "install", "log", "__pycache__", "*.egg-info",
                               ".pytest_cache")


def test_package_xml_is_format_3_ament_python():
    root = ET.parse(ROOT / "package.xml").getroot()
    assert root.tag == "package" and root.get("format") == "3"
    assert root.findtext("name") == "hpt_ros"
    assert root.find("export/build_type").text == "ament_python"
    deps = {e.text for e in root if e.tag.endswith("depend")}
    for dep in ("rclpy", "sensor_msgs", "std_msgs", "geometry_msgs", "trajectory_msgs", "diagnostic_msgs",
                "cv_bridge", "launch", "launch_ros", "python3-numpy", "python3-yaml", "python3-opencv",
                "python3-pytest"):
        assert dep in deps, dep
    assert (ROOT / "resource" / "hpt_ros").is_file()


def test_importing_hpt_ros_needs_no_rclpy_cv_bridge_or_gpu():
    code = (
        "import sys, hpt_ros, hpt_ros.spec, hpt_ros.ros, hpt_ros.ros.transport, hpt_ros.runtime;"
        "bad = [m for m in ('rclpy', 'cv_bridge', 'launch_ros') if m in sys.modules];"
        "assert not bad, bad"
    )
    env = dict(os.environ, CUDA_VISIBLE_DEVICES="")
    res = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr


def test_colcon_build_installs_share_and_executables(tmp_path):
    # beside this interpreter first (a venv that is not activated), then on PATH
    beside = os.path.join(os.path.dirname(sys.executable), "colcon")
    colcon = beside if os.access(beside, os.X_OK) else shutil.which("colcon")
    if colcon is None:
        if os.environ.get("CI") == "true":
            pytest.fail("CI=true but colcon is not installed (it is in the dev extra)")
        pytest.skip("colcon not installed (pip install -e .[dev])")
    src = tmp_path / "ws" / "src" / "hpt_ros"
    shutil.copytree(ROOT, src, ignore=_SKIP)
    ws = tmp_path / "ws"
    res = subprocess.run([colcon, "build", "--base-paths", "src"], cwd=ws, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr
    prefix = ws / "install" / "hpt_ros"
    share = prefix / "share" / "hpt_ros"
    assert (share / "package.xml").is_file()
    assert (share / "launch" / "franka_feed_dog.launch.py").is_file()
    assert (share / "config" / "robots" / "franka_fr3.yaml").is_file()
    assert (prefix / "share" / "ament_index" / "resource_index" / "packages" / "hpt_ros").is_file()
    for exe in EXECUTABLES:
        assert os.access(prefix / "lib" / "hpt_ros" / exe, os.X_OK), exe
    # the installed tree runs on its own: the CLI finds the installed config
    site = next((prefix / "lib").glob("python3*/site-packages"))
    env = dict(os.environ, PYTHONPATH=str(site))
    res = subprocess.run([str(prefix / "lib" / "hpt_ros" / "hpt-ros"), "spec", "check", "franka_fr3"],
                         cwd=tmp_path, env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert "franka_fr3" in res.stdout
