"""Where the package's shared files (config/, launch/, models/) live.

In a source checkout or an editable install they sit beside the ``hpt_ros`` folder;
``pip install`` and ``colcon build`` put them in ``<prefix>/share/hpt_ros``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["DEFAULT_MODEL_NAME", "share_dir", "config_dir", "default_model_path", "models_dir", "launch_dir"]

#: the shipped default checkpoint (what ``hpt-ros demo`` and ``sim-eval`` run unless told otherwise)
DEFAULT_MODEL_NAME = "franka_fr3_feed_dog"


def _candidates() -> list[Path]:
    here = Path(__file__).resolve().parent
    found = []
    if os.environ.get("HPT_ROS_SHARE"):
        found.append(Path(os.environ["HPT_ROS_SHARE"]))
    found.append(here.parent)  # source checkout / editable install
    # colcon: <prefix>/lib/pythonX.Y/site-packages/hpt_ros -> <prefix>/share/hpt_ros
    if len(here.parents) > 3:
        found.append(here.parents[3] / "share" / "hpt_ros")
    found.append(Path(sys.prefix) / "share" / "hpt_ros")
    return found


def share_dir() -> Path:
    for candidate in _candidates():
        if (candidate / "config" / "robots").is_dir():
            return candidate
    raise FileNotFoundError(
        "hpt_ros shared files (config/robots) not found; looked in "
        + ", ".join(str(c) for c in _candidates())
        + " (set HPT_ROS_SHARE to the folder holding config/ and models/)"
    )


def config_dir() -> Path:
    return share_dir() / "config"


def models_dir() -> Path:
    return share_dir() / "models"


def default_model_path() -> Path | None:
    """The shipped default checkpoint (models/franka_fr3_feed_dog), if present."""
    try:
        path = models_dir() / DEFAULT_MODEL_NAME
    except FileNotFoundError:
        return None
    return path if (path / "hpt.yaml").is_file() else None


def launch_dir() -> Path:
    return share_dir() / "launch"
