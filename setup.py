"""ament_python / pip packaging for hpt_ros (``colcon build`` and ``pip install`` use this file)."""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "hpt_ros"


def _files(pattern: str) -> list[str]:
    return sorted(p for p in glob(pattern, recursive=True) if not p.endswith("/"))


def _data_files() -> list[tuple[str, list[str]]]:
    """share/hpt_ros/{launch,config,models}, keeping sub-folders, plus the ament index marker."""
    out: dict[str, list[str]] = {}
    for top in ("launch", "config", "models"):
        for path in _files(f"{top}/**/*"):
            if "/__pycache__/" in path or not __import__("os").path.isfile(path):
                continue
            folder = f"share/{PACKAGE}/" + path.rsplit("/", 1)[0]
            out.setdefault(folder, []).append(path)
    return [
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        *sorted(out.items()),
    ]


setup(
    name=PACKAGE,
    version="0.1.0",
    description="Heterogeneous Pre-trained Transformer (HPT) policies on ROS 2 robots",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[PACKAGE, f"{PACKAGE}.*"]),
    package_data={PACKAGE: ["py.typed", "ros/*.xml"]},
    data_files=_data_files(),
    install_requires=[
        "numpy>=1.24",
        "pyyaml>=6",
        "opencv-python-headless>=4.8",
        "torch>=2.1",
        "onnx>=1.15",
        "onnxscript>=0.1",
        "onnxruntime-gpu>=1.17",
        "safetensors>=0.4",
        "cyclonedds>=0.10.5,<12",
        "rosbags>=0.11,<0.12",
        "mcap>=1.1",
        "tqdm>=4.60",
        "matplotlib>=3.7",
        # the simulated robot, pinned: the measured success rates and the tests' expert
        # episodes hold for this physics (4.0.1 changes them)
        "mujoco==4.0.0",
        "pyarrow>=14",  # LeRobotDataset v3 parquet files (export-lerobot / import-lerobot)
        "av>=14",  # LeRobotDataset v3 videos (PyAV: AV1 / H.264)
        "foxglove-sdk>=0.30,<0.31",  # the live view (Foxglove WebSocket server)
        "setuptools",
    ],
    extras_require={
        "dev": ["pytest>=7", "colcon-common-extensions>=0.3", "websockets>=13"],  # websockets: the view's test client
        "hub": ["huggingface_hub>=0.20"],
    },
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "hpt-ros = hpt_ros.cli:main",
            "policy_node = hpt_ros.nodes.policy_node:main",
            "policy_lifecycle_node = hpt_ros.nodes.policy_lifecycle_node:main",
            "teleop_recorder = hpt_ros.nodes.teleop_recorder:main",
            "fake_robot = hpt_ros.nodes.fake_robot:main",
            "scripted_teleop = hpt_ros.nodes.scripted_teleop:main",
            "replay_eval = hpt_ros.evaluate.cli:main",
        ],
    },
)
