"""franka_feed_dog.launch.py: its arguments, nodes and conditions.

``launch`` and ``launch_ros`` come only with a ROS 2 distribution (not on PyPI), so the
launch file runs here against a thin stand-in that records what it is given: the
argument names and defaults, which nodes start with which parameters, and under which
condition (fake hardware vs franka_ros2 bringup, camera drivers).
"""

from __future__ import annotations

import importlib.util
import sys
import types

import pytest

from conftest import ROOT

LAUNCH_FILE = ROOT / "launch" / "franka_feed_dog.launch.py"


class _Recorded:
    def __init__(self, *args, **kwargs):
        self.args, self.kwargs = args, kwargs


def _stub_modules() -> dict[str, types.ModuleType]:
    def module(name: str, **attrs) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        return mod

    def cls(name: str) -> type:
        return type(name, (_Recorded,), {})

    return {
        "launch": module("launch", LaunchDescription=cls("LaunchDescription")),
        "launch.actions": module("launch.actions", DeclareLaunchArgument=cls("DeclareLaunchArgument"),
                                 IncludeLaunchDescription=cls("IncludeLaunchDescription")),
        "launch.conditions": module("launch.conditions", IfCondition=cls("IfCondition"),
                                    UnlessCondition=cls("UnlessCondition")),
        "launch.launch_description_sources": module(
            "launch.launch_description_sources", PythonLaunchDescriptionSource=cls("PythonLaunchDescriptionSource")),
        "launch.substitutions": module(
            "launch.substitutions", AndSubstitution=cls("AndSubstitution"), LaunchConfiguration=cls("LaunchConfiguration"),
            NotSubstitution=cls("NotSubstitution"), PathJoinSubstitution=cls("PathJoinSubstitution")),
        "launch_ros": module("launch_ros"),
        "launch_ros.actions": module("launch_ros.actions", Node=cls("Node")),
        "launch_ros.substitutions": module("launch_ros.substitutions", FindPackageShare=cls("FindPackageShare")),
    }


@pytest.fixture
def description(monkeypatch):
    for name, mod in _stub_modules().items():
        monkeypatch.setitem(sys.modules, name, mod)
    spec = importlib.util.spec_from_file_location("franka_feed_dog_launch", LAUNCH_FILE)
    launch_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(launch_module)
    return launch_module.generate_launch_description()


def _config_name(value) -> str | None:
    return value.args[0] if type(value).__name__ == "LaunchConfiguration" else None


def test_declares_the_documented_arguments(description):
    entities = description.args[0]
    declared = {e.args[0]: e.kwargs for e in entities if type(e).__name__ == "DeclareLaunchArgument"}
    for name in ("robot_ip", "use_fake_hardware", "robot_config", "model", "rate_hz", "engine", "use_cameras",
                 "use_sim_time", "allow_spec_mismatch"):
        assert name in declared, name
        assert declared[name]["description"], name
    assert declared["use_fake_hardware"]["default_value"] == "true"
    assert declared["robot_config"]["default_value"] == "franka_fr3"
    assert declared["allow_spec_mismatch"]["default_value"] == "false"
    assert (ROOT / "config" / "robots" / "franka_fr3.yaml").is_file()


def test_fake_hardware_and_bringup_are_exclusive(description):
    entities = description.args[0]
    nodes = {e.kwargs["executable"]: e for e in entities if type(e).__name__ == "Node"}
    assert set(nodes) == {"fake_robot", "policy_node"}
    fake_condition = nodes["fake_robot"].kwargs["condition"]
    assert type(fake_condition).__name__ == "IfCondition"
    assert _config_name(fake_condition.args[0]) == "use_fake_hardware"
    includes = [e for e in entities if type(e).__name__ == "IncludeLaunchDescription"]
    bringup = [i for i in includes if "franka_bringup" in repr(i.args[0].args[0].args[0][0].args)]
    assert len(bringup) == 1
    assert type(bringup[0].kwargs["condition"]).__name__ == "UnlessCondition"
    cameras = [i for i in includes if "realsense2_camera" in repr(i.args[0].args[0].args[0][0].args)]
    assert len(cameras) == 2 and all(type(c.kwargs["condition"]).__name__ == "IfCondition" for c in cameras)


def test_policy_node_gets_the_launch_arguments(description):
    entities = description.args[0]
    policy = next(e for e in entities if type(e).__name__ == "Node" and e.kwargs["executable"] == "policy_node")
    params = policy.kwargs["parameters"][0]
    for key in ("robot_config", "model", "rate_hz", "engine", "use_sim_time", "allow_spec_mismatch"):
        assert _config_name(params[key]) == key
    assert policy.kwargs["package"] == "hpt_ros"


def test_executables_exist_as_entry_points():
    text = (ROOT / "setup.py").read_text()
    for exe in ("policy_node = hpt_ros.nodes.policy_node:main", "fake_robot = hpt_ros.nodes.fake_robot:main",
                "teleop_recorder = hpt_ros.nodes.teleop_recorder:main"):
        assert exe in text
