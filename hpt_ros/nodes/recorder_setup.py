"""What the teleop recorder checks and looks up before it records: the output folder (writable,
with room on its disk), the task (name, description, episode length) and the operator."""

from __future__ import annotations

import getpass
import shutil
import tempfile
from pathlib import Path

from hpt_ros.data import BagWriteError, InsufficientSpaceError

__all__ = ["check_output_dir", "task_info", "user_name"]


def check_output_dir(path: str | Path, min_free_bytes: int) -> Path:
    """Fail early, writing nothing, unless ``path`` can hold episodes: creatable or writable,
    and ``min_free_bytes`` free on its disk. Creates the folder only when all checks pass.

    Raises ``BagWriteError`` / ``InsufficientSpaceError`` naming the folder.
    """
    path = Path(path).expanduser().absolute()
    existing = next((p for p in (path, *path.parents) if p.exists()), Path("/"))
    if not existing.is_dir():
        raise BagWriteError(path, f"cannot record here: {existing} is not a directory")
    try:
        with tempfile.TemporaryFile(dir=existing):
            pass
    except OSError as err:
        raise BagWriteError(path, f"cannot record here: directory {existing} is not writable "
                                  f"({err.strerror or err})") from err
    free = shutil.disk_usage(existing).free
    if free < min_free_bytes:
        raise InsufficientSpaceError(path, f"cannot record here: only {free / 1e9:.2f} GB free on the disk of "
                                           f"{existing}, at least {min_free_bytes / 1e9:.2f} GB wanted (min_free_gb)")
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise BagWriteError(path, f"cannot create the output directory: {err.strerror or err}") from err
    return path


def user_name() -> str:
    """The login name for the episode metadata ("unknown" when the system cannot tell)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def task_info(task: str) -> tuple[str, str, float | None]:
    """(task name, description, episode_duration_s) from a task YAML, or the text itself as the name."""
    from hpt_ros.nodes.fake_robot import load_task

    try:
        data = load_task(task)
    except FileNotFoundError:
        return task, "", None
    duration = data.get("episode_duration_s")
    return (str(data.get("task") or task), str(data.get("description") or ""),
            float(duration) if isinstance(duration, (int, float)) else None)
