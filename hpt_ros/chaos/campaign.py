"""``hpt-ros chaos``: the seeded fault-injection campaign and its report (markdown + JSON).

    hpt-ros chaos --runs 200 --output chaos_report      # the full campaign
    hpt-ros chaos --runs 6 --seed 0                      # a few runs

Run ``i`` has seed ``seed + i``. Most runs are in-process on the replay transport; every
``recorder_every``-th run is a recorder run (SIGKILL, full disk, unwritable folder in
turn) and every ``sensor_kill_every``-th a sensor-process kill over DDS. Exit status 1
when any count that must be zero is not, or a recorder kill lost more than ``max_lost_s``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path
from typing import Any

from .checker import COUNTS
from .faults import RECORDER_FAULTS

__all__ = ["build_arg_parser", "cli", "run_campaign", "summarise", "write_report"]

MAX_LOST_S = 1.0


def run_campaign(runs: int, seed: int = 0, *, recorder_every: int = 10, sensor_kill_every: int = 25,
                 duration: float = 4.0, progress: bool = True) -> list[dict[str, Any]]:
    """Run ``runs`` seeded cases; returns one result per run."""
    from .process_cases import run_recorder_case, run_sensor_kill_case
    from .replay_case import run_replay_case

    results = []
    recorder_runs = 0
    for i in range(runs):
        s = seed + i
        if sensor_kill_every and i % sensor_kill_every == sensor_kill_every - 1:
            result = run_sensor_kill_case(s)
        elif recorder_every and i % recorder_every == recorder_every - 1:
            result = run_recorder_case(s, RECORDER_FAULTS[recorder_runs % len(RECORDER_FAULTS)])
            recorder_runs += 1
        else:
            result = run_replay_case(s, duration=duration)
        results.append(result)
        if progress:
            bad = {k: v for k, v in result.get("counts", {}).items() if v}
            print(f"run {i + 1}/{runs} seed {s} {result['kind']}: {result.get('wall_s')} s"
                  + (f" VIOLATIONS {bad}" if bad else ""), flush=True)
    return results


def summarise(results: list[dict[str, Any]]) -> dict[str, Any]:
    """Totals over the runs: faults per kind, the counts, recorder losses, what failed."""
    injected: dict[str, int] = {}
    runs_with: dict[str, int] = {}
    counts = dict.fromkeys(COUNTS, 0)
    holds: dict[str, int] = {}
    lost = [r["lost_s"] for r in results if "lost_s" in r]
    failures = []
    for r in results:
        for kind, n in r.get("injected", {}).items():
            injected[kind] = injected.get(kind, 0) + n
            runs_with[kind] = runs_with.get(kind, 0) + 1
        for kind, n in r.get("counts", {}).items():
            counts[kind] += n
        for reason, n in r.get("hold_reasons", {}).items():
            holds[reason] = holds.get(reason, 0) + n
        if any(r.get("counts", {}).values()):
            failures.append(f"seed {r['seed']} ({r['kind']}): {r.get('examples', [])[:3]}")
        if r.get("lost_s", 0.0) > MAX_LOST_S:
            failures.append(f"seed {r['seed']} (recorder_sigkill): {r['lost_s']} s lost")
        if r["kind"] in ("disk_full", "folder_unwritable") and (not r.get("clean_error") or r.get("hung")):
            failures.append(f"seed {r['seed']} ({r['kind']}): no clean error ({r.get('recorder')})")
        if r["kind"] == "sensor_process_kill" and not (r.get("started") and r.get("resumed")):
            failures.append(f"seed {r['seed']} (sensor_process_kill): started {r.get('started')}, "
                            f"resumed {r.get('resumed')}")
    kinds: dict[str, int] = {}
    for r in results:
        kinds[r["kind"]] = kinds.get(r["kind"], 0) + 1
    return {"runs": len(results), "runs_by_kind": kinds, "faults_injected": dict(sorted(injected.items())),
            "runs_with_fault": dict(sorted(runs_with.items())), "counts": counts,
            "commands_checked": sum(r.get("commands", 0) for r in results),
            "late_deliveries": sum(r.get("late_deliveries", 0) for r in results),
            "stalled_loops": sum(r.get("stalled_loops", 0) for r in results),
            "hold_reasons_seen": dict(sorted(holds.items(), key=lambda kv: -kv[1])),
            "recorder_kills": len(lost), "max_lost_per_kill_s": max(lost) if lost else None,
            "wall_s": round(sum(r.get("wall_s", 0.0) for r in results), 1), "failures": failures,
            "passed": not failures}


def write_report(results: list[dict[str, Any]], output: Path, seed: int) -> dict[str, Any]:
    """``output/chaos_report.json`` (summary + every run) and ``output/chaos_report.md``; returns the summary."""
    summary = summarise(results)
    output.mkdir(parents=True, exist_ok=True)
    (output / "chaos_report.json").write_text(json.dumps({"seed": seed, "summary": summary, "runs": results},
                                                          indent=1, default=str))
    lines = [f"# Fault-injection campaign: {summary['runs']} runs from seed {seed}", "",
             f"Verdict: **{'PASS' if summary['passed'] else 'FAIL'}**", "",
             "| must be zero | count |", "|---|---|"]
    lines += [f"| {k.replace('_', ' ')} | {v} |" for k, v in summary["counts"].items()]
    lost = summary["max_lost_per_kill_s"]
    lines += ["", f"Commands checked: {summary['commands_checked']}. Recorder kills: {summary['recorder_kills']}, "
              f"most time lost by one: {'n/a' if lost is None else f'{lost:.3f} s'} (at most {MAX_LOST_S:g} s).", "",
              f"Between processes (DDS), gaps in the commands that arrived while the node kept commanding "
              f"(late deliveries): {summary['late_deliveries']}; gaps in which the node's loop did not run "
              f"(stalled loops; the robot keeps its last command): {summary['stalled_loops']}.", "",
              "| run kind | runs |", "|---|---|"]
    lines += [f"| {k} | {v} |" for k, v in summary["runs_by_kind"].items()]
    lines += ["", "| fault | runs with it | messages / calls / events affected |", "|---|---|---|"]
    lines += [f"| {k} | {summary['runs_with_fault'][k]} | {v} |" for k, v in summary["faults_injected"].items()]
    lines += ["", "Hold reasons the node gave (ticks):", ""]
    lines += [f"- {k}: {v}" for k, v in summary["hold_reasons_seen"].items()]
    if summary["failures"]:
        lines += ["", "Failures:", ""] + [f"- {f}" for f in summary["failures"]]
    lines += ["", f"Wall time of the runs: {summary['wall_s']} s.", ""]
    (output / "chaos_report.md").write_text("\n".join(lines))
    return summary


def build_arg_parser(prog: str = "hpt-ros chaos") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Seeded fault-injection campaign: fake robot, policy "
                                     "node and recorder under random faults; counts every unsafe command.")
    parser.add_argument("--runs", type=int, default=200, help="number of seeded runs (default 200)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the first run (default 0)")
    parser.add_argument("--output", "-o", default="chaos_report", help="folder for chaos_report.md / .json")
    parser.add_argument("--duration", type=float, default=4.0, help="simulated seconds per in-process run")
    parser.add_argument("--recorder-every", type=int, default=10, help="every Nth run is a recorder run (0: none)")
    parser.add_argument("--sensor-kill-every", type=int, default=25,
                        help="every Nth run kills a sensor process over DDS (0: none)")
    return parser


def cli(argv: list[str], prog: str = "hpt-ros chaos") -> int:
    args = build_arg_parser(prog).parse_args(argv)
    # the faults make the nodes log on every run: keep the campaign's own output readable
    logging.getLogger("hpt_ros").setLevel(logging.CRITICAL)
    started = time.perf_counter()
    results = run_campaign(args.runs, args.seed, recorder_every=args.recorder_every,
                           sensor_kill_every=args.sensor_kill_every, duration=args.duration)
    summary = write_report(results, Path(args.output), args.seed)
    print(f"{summary['runs']} runs in {time.perf_counter() - started:.0f} s: counts {summary['counts']}, "
          f"max lost per kill {summary['max_lost_per_kill_s']} s -> {Path(args.output) / 'chaos_report.md'}")
    return 0 if summary["passed"] else 1
