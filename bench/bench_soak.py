"""Benchmark: a long closed loop on the dds transport; does memory or latency drift over time?

    nice -n 19 .venv/bin/python bench/bench_soak.py [--minutes 30] [--sample-s 10] [--episode-s 15] [--out DIR]

The simulated Franka (``hpt-ros fake-robot``: MuJoCo physics, joint states at 100 Hz, two
rgb8 cameras) and the policy node (``hpt-ros policy``, the shipped model
models/franka_fr3_feed_dog unless ``--model``) run as their own processes over Cyclone DDS,
on loopback through the package's own configuration (``ensure_dds_config``). This process
starts a new seeded feed-the-dog episode every ``--episode-s`` seconds (motion disabled,
``/fake_robot/reset`` with the next episode index, motion enabled again, as ``hpt-ros
demo`` does), so the policy keeps working at the task instead of idling at a finished one.

Every ``--sample-s`` seconds it records each child's resident memory (VmRSS from
/proc/<pid>/status), the commands that arrived per second of enabled motion, the node's
own inference latency (``inference_p50_ms`` / ``inference_p99_ms`` in its /diagnostics,
over its last 200 ticks) and, per command, the tick-to-command latency: arrival time
minus the command's header stamp, which the synchronous node sets to the tick's start
(inference + safety + DDS delivery; one clock, one host).

Printed at the end: per window (the first 5 minutes, the 5 around the middle, the last 5;
each a third of the run when it is shorter than 15 minutes) the median RSS of each
process, the command rate, the node's inference p50 / p99, the tick-to-command p50 / p95,
and the episodes that succeeded; then the ratios last / first, measured side by side in
the one run. ``--out DIR`` also writes soak.json (every sample, every episode, the windows)
and soak.png (RSS and latency over time). Nothing passes or fails: the ratios are the
result.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import pathlib
import sys
import textwrap
import threading
import time
from typing import Any

from _processes import stop_children

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a file: make the package importable
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

STARTUP_S = 240.0  # torch, the model and MuJoCo on a loaded two-core machine
EDGE_WINDOW_S = 300.0  # the first and last windows: 5 minutes, or a third of a shorter run
PROCESSES = ("robot", "policy")


def rss_mb(pid: int) -> float:
    """Resident memory of ``pid`` [MB], from /proc (NaN once the process is gone)."""
    try:
        for line in pathlib.Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return math.nan


def as_float(text: str | None) -> float:
    try:
        return float(text) if text is not None else math.nan
    except ValueError:  # "n/a", "never"
        return math.nan


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def windows(duration_s: float) -> list[tuple[str, float, float]]:
    """(name, start, end) of the first, middle and last windows, all of the same length."""
    edge = min(EDGE_WINDOW_S, duration_s / 3.0)
    mid = duration_s / 2.0
    return [("first", 0.0, edge), ("middle", mid - edge / 2.0, mid + edge / 2.0), ("last", duration_s - edge, duration_s)]


def commands_for(args: argparse.Namespace) -> dict[str, list[str]]:
    cli = [sys.executable, "-m", "hpt_ros.cli"]
    return {"robot": [*cli, "fake-robot", "--robot", args.robot, "--seed", str(args.seed), "--width", str(args.width),
                      "--height", str(args.height), "--camera-rate-hz", str(args.camera_rate_hz)],
            "policy": [*cli, "policy", "--robot", args.robot, "--model", args.model]}


def soak(args: argparse.Namespace, spec, log_path: pathlib.Path) -> dict[str, Any]:
    import subprocess

    from hpt_ros.msgs import messages
    from hpt_ros.nodes.fake_robot import RESET_TOPIC, TASK_STATUS_TOPIC
    from hpt_ros.ros import make_transport
    from hpt_ros.ros.transport import QOS_DEFAULT, QOS_LATCHED

    log = open(log_path, "w")
    # two processes on two cores: idle OpenMP threads must sleep, not spin against the other (as hpt-ros demo)
    env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_WAIT_POLICY=os.environ.get("OMP_WAIT_POLICY", "PASSIVE"))
    procs = {name: subprocess.Popen(command, cwd=REPO, stdout=log, stderr=subprocess.STDOUT, env=env)
             for name, command in commands_for(args).items()}
    monitor = make_transport("dds", "bench_soak")
    lock = threading.Lock()
    arrivals: list[float] = []  # monotonic arrival of each command
    latencies: list[tuple[float, float]] = []  # (monotonic arrival, tick-to-command [ms])
    diagnostics: dict[str, str] = {}
    status: dict[str, Any] = {}
    motion = {"enabled": False, "since": 0.0, "total_s": 0.0}

    def on_command(msg: Any) -> None:
        now, wall = time.monotonic(), time.time()
        header = getattr(msg, "header", None)  # Float64MultiArray commands carry no stamp
        with lock:
            arrivals.append(now)
            if header is not None:
                latencies.append((now, (wall - messages.stamp_to_seconds(header.stamp)) * 1e3))

    def on_diagnostics(msg: Any) -> None:
        values = messages.diagnostic_values(msg, "policy")
        if values is not None:
            with lock:
                diagnostics.clear()
                diagnostics.update(values)

    def on_status(msg: Any) -> None:
        status.update(messages.json_object(msg))

    monitor.create_subscription(spec.action.command.topic, spec.action.command.type, on_command, QOS_DEFAULT)
    monitor.create_subscription("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray", on_diagnostics, QOS_DEFAULT)
    monitor.create_subscription(TASK_STATUS_TOPIC, "std_msgs/msg/String", on_status, QOS_LATCHED)
    enable_pub = monitor.create_publisher(spec.safety.enable_topic, "std_msgs/msg/Bool", QOS_DEFAULT)
    reset_pub = monitor.create_publisher(RESET_TOPIC, "std_msgs/msg/Float64MultiArray", QOS_DEFAULT)

    def publish_enable() -> None:  # repeated: a message sent before the node matched is not lost for good
        enable_pub.publish(messages.fill_bool(monitor.new_message("std_msgs/msg/Bool"), motion["enabled"]))

    def set_motion(enabled: bool) -> None:
        now = time.monotonic()
        if motion["enabled"] and not enabled:
            motion["total_s"] += now - motion["since"]
        if enabled and not motion["enabled"]:
            motion["since"] = now
        motion["enabled"] = enabled
        publish_enable()

    def enabled_s() -> float:
        return motion["total_s"] + (time.monotonic() - motion["since"] if motion["enabled"] else 0.0)

    def exited() -> list[str]:
        return [name for name, proc in procs.items() if proc.poll() is not None]

    monitor.create_timer(0.5, publish_enable, group="enable")
    episodes: list[dict[str, Any]] = []
    samples: list[dict[str, Any]] = []
    try:
        deadline = time.monotonic() + STARTUP_S
        monitor.spin(until=lambda: (bool(diagnostics) and bool(status)) or bool(exited())
                     or time.monotonic() > deadline)
        if not diagnostics or not status:
            raise SystemExit(f"the policy node or the fake robot did not come up (exited: {exited()}; log {log_path}):"
                             f"\n{log_path.read_text()[-3000:]}")

        t0 = time.monotonic()

        def start_episode(index: int) -> None:
            if index > 0:
                episodes.append({"episode": index - 1, "ended_s": round(time.monotonic() - t0, 2),
                                 "success": bool(status.get("success")), "time_to_success": status.get("time_to_success")})
            set_motion(False)
            msg = monitor.new_message("std_msgs/msg/Float64MultiArray")
            reset_pub.publish(messages.fill_float64_multi_array(msg, [float(index)]))
            monitor.spin(duration_s=3.0, until=lambda: status.get("episode") == index and status["elapsed"] < 1.0)
            set_motion(True)

        episode, next_episode = 0, t0
        last = {"t": t0, "commands": 0, "latencies": 0, "enabled_s": 0.0}
        for i in range(1, max(1, round(args.minutes * 60.0 / args.sample_s)) + 1):
            due = t0 + i * args.sample_s
            while (now := time.monotonic()) < due:
                if gone := exited():
                    raise SystemExit(f"{', '.join(gone)} exited during the soak (log {log_path}):\n"
                                     f"{log_path.read_text()[-3000:]}")
                if now >= next_episode:
                    start_episode(episode)
                    episode, next_episode = episode + 1, next_episode + args.episode_s
                    continue
                monitor.spin(duration_s=max(0.0, min(due, next_episode) - time.monotonic()))
            with lock:
                node = dict(diagnostics)
                window = [ms for _, ms in latencies[last["latencies"]:]]
                n_commands, n_latencies = len(arrivals), len(latencies)
            now, on_s = time.monotonic(), enabled_s()
            sample = {"t_s": round(now - t0, 2), **{f"rss_{name}_mb": round(rss_mb(p.pid), 1) for name, p in procs.items()},
                      "commands": n_commands - last["commands"], "enabled_s": round(on_s - last["enabled_s"], 3),
                      "tick_to_command_p50_ms": percentile(window, 50), "tick_to_command_p95_ms": percentile(window, 95),
                      "node_inference_p50_ms": as_float(node.get("inference_p50_ms")),
                      "node_inference_p99_ms": as_float(node.get("inference_p99_ms")),
                      "node_rate_hz": as_float(node.get("rate_hz")), "held_ticks": node.get("held_ticks"),
                      "hold_events": node.get("hold_events"), "safety_state": node.get("safety_state"),
                      "episode": episode - 1}
            samples.append(sample)
            last = {"t": now, "commands": n_commands, "latencies": n_latencies, "enabled_s": on_s}
            print(f"  {sample['t_s']:7.1f} s  RSS robot {sample['rss_robot_mb']:6.1f} MB, policy "
                  f"{sample['rss_policy_mb']:6.1f} MB; {sample['commands'] / max(sample['enabled_s'], 1e-9):5.2f} "
                  f"commands/s; inference p50 {sample['node_inference_p50_ms']:.1f} ms; tick->command p50 "
                  f"{sample['tick_to_command_p50_ms']:.1f} ms; episode {sample['episode']}", flush=True)
        with lock:
            command_latencies = [(round(t - t0, 3), round(ms, 3)) for t, ms in latencies if t >= t0]
    finally:
        set_motion(False)
        monitor.shutdown()
        stop_children(procs.values())
        log.close()
    return {"samples": samples, "episodes": episodes, "command_latencies": command_latencies,
            "duration_s": samples[-1]["t_s"] if samples else 0.0}


def summarise(result: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per window: medians of the samples in it, percentiles of the commands in it."""
    rows = []
    for name, start, end in windows(result["duration_s"]):
        inside = [s for s in result["samples"] if start < s["t_s"] <= end + 1e-6]  # a sample covers the interval before it
        lat = [ms for t, ms in result["command_latencies"] if start <= t < end]
        eps = [e for e in result["episodes"] if start < e["ended_s"] <= end + 1e-6]
        row: dict[str, Any] = {"window": name, "start_s": round(start, 1), "end_s": round(end, 1)}
        for proc in PROCESSES:
            row[f"rss_{proc}_mb"] = float(np.nanmedian([s[f"rss_{proc}_mb"] for s in inside])) if inside else math.nan
        row["command_hz"] = sum(s["commands"] for s in inside) / max(sum(s["enabled_s"] for s in inside), 1e-9)
        for key in ("node_inference_p50_ms", "node_inference_p99_ms"):
            values = [s[key] for s in inside if math.isfinite(s[key])]
            row[key] = float(np.median(values)) if values else math.nan
        row["tick_to_command_p50_ms"], row["tick_to_command_p95_ms"] = percentile(lat, 50), percentile(lat, 95)
        row["successes"], row["episodes"] = sum(e["success"] for e in eps), len(eps)
        rows.append(row)
    return rows


RATIO_KEYS = ("rss_robot_mb", "rss_policy_mb", "command_hz", "node_inference_p50_ms", "node_inference_p99_ms",
              "tick_to_command_p50_ms", "tick_to_command_p95_ms")


def ratios(rows: list[dict[str, Any]]) -> dict[str, float]:
    first, last = rows[0], rows[-1]
    return {key: last[key] / first[key] if first[key] else math.nan for key in RATIO_KEYS}


def print_table(rows: list[dict[str, Any]], last_over_first: dict[str, float]) -> None:
    print(f"  {'window':<8}{'span [min]':>13}{'RSS robot':>12}{'RSS policy':>12}{'commands':>11}"
          f"{'inference p50':>15}{'p99 (node)':>12}{'tick->command p50':>19}{'p95':>9}{'successes':>11}")
    for r in rows:
        print(f"  {r['window']:<8}{r['start_s'] / 60:>6.1f}-{r['end_s'] / 60:<6.1f}{r['rss_robot_mb']:>9.1f} MB"
              f"{r['rss_policy_mb']:>9.1f} MB{r['command_hz']:>8.2f} Hz{r['node_inference_p50_ms']:>12.1f} ms"
              f"{r['node_inference_p99_ms']:>9.1f} ms{r['tick_to_command_p50_ms']:>16.1f} ms"
              f"{r['tick_to_command_p95_ms']:>6.1f} ms{r['successes']:>7d}/{r['episodes']:<3d}")
    q = last_over_first
    print(f"  {'last / first':<21}{q['rss_robot_mb']:>12.3f}{q['rss_policy_mb']:>12.3f}{q['command_hz']:>11.3f}"
          f"{q['node_inference_p50_ms']:>15.3f}{q['node_inference_p99_ms']:>12.3f}"
          f"{q['tick_to_command_p50_ms']:>19.3f}{q['tick_to_command_p95_ms']:>9.3f}")


def write_outputs(out: pathlib.Path, report: dict[str, Any]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    out.mkdir(parents=True, exist_ok=True)
    (out / "soak.json").write_text(json.dumps(report, indent=1, default=str))
    samples = report["samples"]
    minutes = [s["t_s"] / 60 for s in samples]
    fig, (ax_rss, ax_lat) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    for proc in PROCESSES:
        ax_rss.plot(minutes, [s[f"rss_{proc}_mb"] for s in samples], marker=".", label=f"{proc} (hpt-ros "
                    f"{'fake-robot' if proc == 'robot' else 'policy'})")
    ax_rss.set_ylabel("RSS [MB]")
    for key, label in (("node_inference_p50_ms", "inference p50 (node, last 200 ticks)"),
                       ("node_inference_p99_ms", "inference p99 (node, last 200 ticks)"),
                       ("tick_to_command_p50_ms", "tick -> command p50 (per sample)"),
                       ("tick_to_command_p95_ms", "tick -> command p95 (per sample)")):
        ax_lat.plot(minutes, [s[key] for s in samples], marker=".", label=label)
    ax_lat.set_ylabel("latency [ms]")
    ax_lat.set_xlabel("minutes")
    for ax in (ax_rss, ax_lat):
        for row in report["windows"]:
            ax.axvspan(row["start_s"] / 60, row["end_s"] / 60, alpha=0.08, color="grey")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle("\n".join(textwrap.wrap(f"soak: {report['setup']['description']}", 120)), fontsize=9)
    fig.tight_layout()
    fig.savefig(out / "soak.png", dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0, help="length of the soak (default 30)")
    parser.add_argument("--sample-s", type=float, default=10.0, help="seconds between samples (default 10)")
    parser.add_argument("--episode-s", type=float, default=15.0, help="seconds per episode (default 15)")
    parser.add_argument("--robot", default="franka_fr3", help="spec path or shipped name")
    parser.add_argument("--model", default=str(REPO / "models" / "franka_fr3_feed_dog"), help="checkpoint")
    parser.add_argument("--seed", type=int, default=1000, help="scene seed (default 1000, as hpt-ros demo)")
    parser.add_argument("--camera-rate-hz", type=float, default=15.0, help="default 15, as hpt-ros demo")
    parser.add_argument("--width", type=int, default=224)
    parser.add_argument("--height", type=int, default=224)
    parser.add_argument("--out", default=None, help="folder for soak.json, soak.png and the children's log")
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(200 + os.getpid() % 32))

    from hpt_ros.ros.dds_config import ensure_dds_config
    from hpt_ros.spec import load_spec

    ensure_dds_config()  # before the children start: they inherit the loopback configuration
    spec = load_spec(args.robot)
    out = pathlib.Path(args.out) if args.out else None
    log_dir = out if out is not None else pathlib.Path(os.environ.get("TMPDIR", "/tmp"))
    log_dir.mkdir(parents=True, exist_ok=True)
    log_path = log_dir / f"bench_soak_{os.getpid()}.log"
    description = (f"fake robot (2 x {args.width}x{args.height} rgb8 at {args.camera_rate_hz:g} Hz, joint states "
                   f"100 Hz) + policy node (spec {spec.name} at {spec.rate_hz:g} Hz, {pathlib.Path(args.model).name}) "
                   f"on dds, {args.minutes:g} min, an episode every {args.episode_s:g} s, a sample every "
                   f"{args.sample_s:g} s")
    print(f"soak: {description}; ROS_DOMAIN_ID {os.environ['ROS_DOMAIN_ID']}, log {log_path}", flush=True)
    result = soak(args, spec, log_path)
    rows = summarise(result)
    last_over_first = ratios(rows)
    print(f"\nsoak over {result['duration_s'] / 60:.1f} min: {description}; os.cpu_count() {os.cpu_count()}, "
          f"load average {os.getloadavg()[0]:.2f}, {len(result['episodes'])} episodes finished")
    print_table(rows, last_over_first)
    if out is not None:
        setup = {"description": description, "args": vars(args), "cpu_count": os.cpu_count(),
                 "load_average": os.getloadavg(), "ros_domain_id": os.environ["ROS_DOMAIN_ID"]}
        write_outputs(out, {"setup": setup, "windows": rows, "ratios_last_over_first": last_over_first, **result})
        print(f"  written: {out / 'soak.json'}, {out / 'soak.png'}")


if __name__ == "__main__":
    main()
