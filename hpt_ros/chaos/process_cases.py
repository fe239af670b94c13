"""Chaos runs that need processes: the recorder killed, its disk filling, its folder made
unwritable; and a sensor process killed and restarted under a policy node (real DDS on
loopback, the package's dds_config).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["run_recorder_case", "run_sensor_kill_case"]

#: root writes into any folder: the child runs without the capabilities that allow it
_WITHOUT_DAC_OVERRIDE = ["setpriv", "--bounding-set", "-dac_override,-dac_read_search"]


def _read_progress(path: Path) -> tuple[float, float] | None:
    """(simulated time, start of the episode being recorded or NaN) as the child last wrote them."""
    try:
        now, episode_start = (float(v) for v in path.read_text().split())
        return now, episode_start
    except (OSError, ValueError):
        return None


def _last_recovered(folder: Path) -> tuple[float | None, int]:
    """(time of the last message the episode's bag gives back after repair, message count)."""
    from hpt_ros.data import list_episodes, open_bag, repair_bag

    episodes = list_episodes(folder)
    if not episodes:
        return None, 0
    info = episodes[-1]
    try:
        if info.needs_repair or not info.complete:
            repair_bag(info.path)
        last, count = None, 0
        with open_bag(info.path, recover=True) as bag:
            for m in bag.messages():
                count += 1
                last = m.timestamp_ns / 1e9 if last is None else max(last, m.timestamp_ns / 1e9)
        return last, count
    except Exception as exc:  # noqa: BLE001 - an unreadable bag is itself the finding
        logging.getLogger("hpt_ros.chaos").warning("%s: nothing recovered: %s", info.path, exc)
        return None, 0


@contextlib.contextmanager
def _scratch_disk(size_mb: int | None) -> Iterator[tuple[Path, str]]:
    """A folder; with ``size_mb`` on a tmpfs of that size (root), else a plain folder and a
    file-size limit for the child (RLIMIT_FSIZE: the kernel refuses the write as a full disk does)."""
    base = Path(tempfile.mkdtemp(prefix="hpt_chaos_disk_"))
    mounted = False
    if size_mb is not None and os.geteuid() == 0:
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_mb}m", "tmpfs", str(base)],
                                 capture_output=True).returncode == 0
    try:
        yield base, "tmpfs" if mounted else ("rlimit_fsize" if size_mb is not None else "plain")
    finally:
        if mounted:
            subprocess.run(["umount", str(base)], capture_output=True)
        shutil.rmtree(base, ignore_errors=True)


def _child_preexec(limit_bytes: int | None):
    def prepare() -> None:
        import resource

        if limit_bytes is not None:
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit_bytes, limit_bytes))
    return prepare


def run_recorder_case(seed: int, kind: str, *, duration: float = 3.0, timeout_s: float = 60.0) -> dict[str, Any]:
    """One recorder run with fault ``kind`` (recorder_sigkill | disk_full | folder_unwritable)."""
    rng = np.random.default_rng(seed)
    at = float(rng.uniform(0.8, duration - 0.5))
    started = time.perf_counter()
    result: dict[str, Any] = {"seed": seed, "kind": kind, "fault_at_s": round(at, 3), "injected": {kind: 1},
                              "without_dac_override": False}
    size_mb = int(rng.integers(1, 3)) if kind == "disk_full" else None
    with _scratch_disk(size_mb) as (disk, how):
        out = disk / "episodes"
        out.mkdir()
        drop_root = kind == "folder_unwritable" and os.geteuid() == 0 and shutil.which("setpriv") is not None
        progress = Path(tempfile.gettempdir()) / f"hpt_chaos_progress_{os.getpid()}_{seed}"
        limit = 2 << 20 if kind == "disk_full" and how != "tmpfs" else None
        env = {**os.environ, "HOME": tempfile.gettempdir(), "PYTHONDONTWRITEBYTECODE": "1"}
        child = subprocess.Popen(
            (_WITHOUT_DAC_OVERRIDE if drop_root else []) + [sys.executable, "-m", "hpt_ros.chaos.recorder_child", str(out), str(progress), str(seed), str(duration)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
            preexec_fn=_child_preexec(limit))
        deadline = time.monotonic() + timeout_s
        fault_time = None
        while child.poll() is None and time.monotonic() < deadline:
            seen = _read_progress(progress)
            if seen is not None and fault_time is None and seen[0] - seen[1] >= at:  # NaN: not recording yet
                now = seen[0]
                fault_time = now
                if kind == "recorder_sigkill":
                    child.send_signal(signal.SIGKILL)
                elif kind == "folder_unwritable":
                    for folder in [out, *out.iterdir()]:
                        os.chmod(folder, 0o555)
            time.sleep(0.01)
        if child.poll() is None:
            child.kill()
            result["hung"] = True
        stdout, stderr = child.communicate()
        kill_time = fault_time if kind == "recorder_sigkill" else None
        for folder in [out, *out.iterdir()]:
            os.chmod(folder, 0o755)
        copy = Path(tempfile.mkdtemp(prefix="hpt_chaos_copy_"))  # repaired on a disk with room
        shutil.copytree(out, copy / "episodes")
        last, count = _last_recovered(copy / "episodes")
        shutil.rmtree(copy, ignore_errors=True)
        with contextlib.suppress(OSError):
            progress.unlink()
        result["without_dac_override"] = drop_root
        result.update({"disk": how, "returncode": child.returncode,
                       "messages_recovered": count})
        lines = [ln for ln in stdout.splitlines() if ln.startswith("{")]
        if lines:
            result["recorder"] = json.loads(lines[-1])
        if kind == "recorder_sigkill" and kill_time is not None:
            # progress is written every 50 ms: the kill came at most that much after it
            result["lost_s"] = round(max(0.0, kill_time + 0.05 - last) if last is not None else float("inf"), 3)
        else:
            outcome = result.get("recorder", {})
            result["clean_error"] = outcome.get("code") == 1 and bool(outcome.get("event"))
            result["stderr_tail"] = stderr[-400:]
    result["wall_s"] = round(time.perf_counter() - started, 2)
    return result


def run_sensor_kill_case(seed: int, *, duration: float = 6.0) -> dict[str, Any]:
    """The fake robot's cameras in their own process over DDS (loopback), killed and restarted
    under a policy node and the arm in this process; the safety checker watches over DDS too."""
    from hpt_ros.nodes.fake_robot import FakeRobot
    from hpt_ros.nodes.policy_node import PolicyNode
    from hpt_ros.ros import make_transport
    from hpt_ros.ros.dds_config import ensure_dds_config
    from hpt_ros.spec import load_spec

    from .checker import SafetyChecker
    from .replay_case import hold_reason_of, node_counts_of
    from .stand_ins import AdversarialEngine, EnableSwitch

    ensure_dds_config()
    rng = np.random.default_rng(seed)
    kill_at, down_for = float(rng.uniform(1.5, 2.5)), float(rng.uniform(0.3, 1.5))
    spec = load_spec("franka_fr3")
    started = time.perf_counter()
    domain = str(100 + seed % 100)  # a DDS domain of its own: runs never see each other's traffic
    os.environ["ROS_DOMAIN_ID"] = domain
    cameras_cmd = [sys.executable, "-m", "hpt_ros.cli", "fake-robot", "--components", "cameras", "--width", "64",
                   "--height", "64", "--seed", str(seed)]
    env = {**os.environ, "ROS_DOMAIN_ID": domain}
    transports = [make_transport("dds", name, params) for name, params in
                  (("fake_robot_arm", {"components": "arm", "seed": seed}), ("policy_node", {}),
                   ("chaos_checker", {}))]
    arm_t, policy_t, checker_t = transports
    cameras = subprocess.Popen(cameras_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    restarts = 0
    try:
        FakeRobot(arm_t, spec)
        node = PolicyNode(policy_t, spec, AdversarialEngine(spec, np.random.default_rng(seed)))
        EnableSwitch(checker_t, spec, [], time.time())  # enabled throughout: the fault here is the kill
        checker = SafetyChecker(checker_t, spec, spec.state_sensors[0].topic, lambda: hold_reason_of(node),
                                recent_states=20, node_counts=lambda: node_counts_of(node))
        import threading

        stop = threading.Event()
        spinners = [threading.Thread(target=t.spin, kwargs={"until": stop.is_set}, daemon=True) for t in transports]
        for s in spinners:
            s.start()
        wait_until = time.monotonic() + 30.0  # the camera process first has to start and render
        while node.runtime.stats().commands == 0 and time.monotonic() < wait_until:
            time.sleep(0.1)
        first_command = node.runtime.stats().commands > 0
        time.sleep(kill_at)
        cameras.send_signal(signal.SIGKILL)
        cameras.wait()
        time.sleep(down_for)
        cameras = subprocess.Popen(cameras_cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        restarts += 1
        commands_before = node.runtime.stats().commands
        wait_until = time.monotonic() + 30.0
        while node.runtime.stats().commands <= commands_before + 5 and time.monotonic() < wait_until:
            time.sleep(0.1)
        resumed = node.runtime.stats().commands > commands_before + 5
        time.sleep(max(0.0, duration - kill_at - down_for))
        stop.set()
        for s in spinners:
            s.join(timeout=5.0)
        node.close()
        counts = checker.finish()
    finally:
        if cameras.poll() is None:
            cameras.kill()
            cameras.wait()
        for t in transports:
            t.shutdown()
    return {"seed": seed, "kind": "sensor_process_kill", "injected": {"sensor_process_kill": restarts},
            "kill_at_s": round(kill_at, 3), "down_s": round(down_for, 3), "started": first_command,
            "resumed": resumed, "counts": counts, "commands": checker.commands, "hold_reasons": checker.hold_reasons,
            "late_deliveries": checker.late_deliveries, "stalled_loops": checker.stalled_loops,
            "examples": checker.examples, "wall_s": round(time.perf_counter() - started, 2)}
