"""Closed-loop success and smoothness, synchronous vs asynchronous execution, at injected inference latencies.

    python -m hpt_ros.evaluate.latency_table --episodes 20 --seed 1000 --out latency/

Every cell (execution mode x latency, by default sync and async at 0, 50, 100, 200 and
400 ms) runs ``sim_evaluate`` on the same held-out scenes ``(seed, 0..episodes-1)`` with
one model, under a robot spec that differs from ``--robot`` only in its ``execution``
section (``async`` and ``inference_latency_ms``; written to ``<out>/<cell>/robot.yaml``).
The latency is simulated on the replay clock, so each cell gives the same result on every
run. ``results.md`` and ``results.json`` hold one row per cell: success rate with its 95 %
Wilson interval, commands per second, the share of held ticks, and the chunk-boundary
discontinuity: the largest joint jump between consecutive commands (per episode, then its
maximum and mean over the episodes).

What the latency means in each mode, at the Franka spec's 15 Hz (period 66.7 ms):

* **sync**: the control loop is blocked in inference for the latency. The command
  computed from the observation of tick t goes out at t + latency, so it is that stale
  when the robot gets it, and the ticks that fall inside the inference are skipped (as a
  timer whose callback overruns drops the calls it missed); the loop runs again at the
  next tick of the grid. 50 ms: every tick, 50 ms stale; 100 ms: every second tick
  (7.5 Hz); 200 ms: every third (5 Hz); 400 ms: every sixth (2.5 Hz). The safety step
  limit stays per tick, so fewer ticks also mean a slower arm.
* **async**: every tick commands from the chunks in hand; a chunk arrives the latency
  after its observation, aligned to that observation's tick (its past steps dropped) and
  blended with the chunks already there. One inference is in flight at a time; when the
  latency is close to the chunk's length (8 steps = 533 ms), chunks stop overlapping and
  the ticks no chunk covers hold.

At 0 ms both modes compute the same commands. Each cell takes as long as ``sim-eval``
with the same episodes, so the default table costs ten of those runs; ``--reuse`` keeps
the cells whose ``metrics.json`` is of the same model, scenes and time limit.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import yaml

__all__ = ["DEFAULT_LATENCIES_MS", "MODES", "cli", "latency_table", "main", "results_table"]

DEFAULT_LATENCIES_MS = (0, 50, 100, 200, 400)
MODES = ("sync", "async")

logger = logging.getLogger("hpt_ros.evaluate")


def cell_name(mode: str, latency_ms: float) -> str:
    return f"{mode}_{latency_ms:g}ms"


def write_cell_spec(base: Any, mode: str, latency_ms: float, path: Path) -> Path:
    """``base`` (a ``RobotSpec``) with ``execution.async`` and ``execution.inference_latency_ms`` set, as YAML."""
    if mode not in MODES:
        raise ValueError(f"execution mode {mode!r}: expected one of {', '.join(MODES)}")
    data = json.loads(json.dumps(base.raw))  # a deep copy of plain YAML data
    execution = dict(data.get("execution") or {})
    execution.update({"async": mode == "async", "inference_latency_ms": float(latency_ms)})
    data["execution"] = execution
    model = data.get("model")
    if isinstance(model, dict) and model.get("path") and base.source not in ("", "<memory>"):
        # a relative model path is resolved beside the spec file: keep it pointing where it did
        model_path = Path(model["path"]).expanduser()
        if not model_path.is_absolute():
            data["model"] = {**model, "path": str((Path(base.source).parent / model_path).resolve())}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"# {base.source} with execution: {mode}, {latency_ms:g} ms simulated inference latency\n"
                    + yaml.safe_dump(data, sort_keys=False))
    return path


def _reusable(path: Path, episodes: int, seed: int, max_seconds: float, model: str) -> dict[str, Any] | None:
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same = (metrics.get("seed") == seed and metrics.get("max_seconds") == max_seconds
            and metrics.get("model") == model and metrics.get("overall", {}).get("episodes") == episodes)
    return metrics if same else None


def summarise_cell(mode: str, latency_ms: float, metrics: dict[str, Any]) -> dict[str, Any]:
    """One row of the table from a cell's ``sim_evaluate`` metrics."""
    from .sim_eval import wilson_interval

    episodes = metrics["per_episode"]
    n, wins = len(episodes), sum(bool(e["success"]) for e in episodes)
    low, high = wilson_interval(wins, n)
    jumps = [float(e["max_joint_step"]) for e in episodes]
    seconds = sum(float(e["duration_s"]) for e in episodes)
    commands = sum(int(e["commands"]) for e in episodes)
    held = sum(int(e["held_ticks"]) for e in episodes)
    return {
        "mode": mode,
        "latency_ms": float(latency_ms),
        "episodes": n,
        "successes": wins,
        "success_rate": wins / n if n else None,
        "success_rate_ci95": [round(low, 4), round(high, 4)],
        "commands_per_s": round(commands / seconds, 3) if seconds > 0 else None,
        "held_tick_fraction": round(held / (held + commands), 4) if held + commands else None,
        "max_joint_step": round(max(jumps), 5) if jumps else None,
        "mean_max_joint_step": round(float(np.mean(jumps)), 5) if jumps else None,
    }


def latency_table(model: str | None = None, *, episodes: int, seed: int, out: str | Path,
                  robot: str = "franka_fr3", latencies_ms: Sequence[float] = DEFAULT_LATENCIES_MS,
                  modes: Sequence[str] = MODES, max_seconds: float = 15.0, width: int = 224, height: int = 224,
                  engine: Any = None, backend: str | None = None, precision: str | None = None,
                  threads: int | None = None, videos: bool = False, progress: bool = True,
                  reuse: bool = False) -> dict[str, Any]:
    """Run every (mode, latency) cell; write ``results.md`` / ``results.json`` in ``out`` and return the results."""
    from hpt_ros.spec import load_spec

    from .sim_eval import sim_evaluate

    for mode in modes:
        if mode not in MODES:
            raise ValueError(f"execution mode {mode!r}: expected one of {', '.join(MODES)}")
    base = load_spec(robot)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if engine is None:
        from hpt_ros.engine.factory import load_engine
        from hpt_ros.resources import default_model_path

        model = model or (str(default_model_path()) if default_model_path() is not None else None)
        if not model:
            raise FileNotFoundError("no model given and no default model shipped in models/franka_fr3_feed_dog")
        engine = load_engine(model, base, backend=backend, precision=precision, threads=threads)
        engine.warmup(iterations=2)
    model_name = str(model) if model else "default"
    cells: list[dict[str, Any]] = []
    for mode in modes:
        for latency in latencies_ms:
            name = cell_name(mode, latency)
            folder = out / name
            metrics = _reusable(folder / "metrics.json", episodes, seed, max_seconds, model_name) if reuse else None
            if metrics is None:
                spec_file = write_cell_spec(base, mode, latency, folder / "robot.yaml")
                if progress:
                    print(f"{name}: {episodes} episodes", file=sys.stderr)
                metrics = sim_evaluate(model_name if model else None, episodes=episodes, seed=seed, out=folder,
                                       robot=str(spec_file), max_seconds=max_seconds, engine=engine,
                                       videos=videos, width=width, height=height, progress=progress)
            else:
                logger.info("%s: reusing %s", name, folder / "metrics.json")
            cells.append({**summarise_cell(mode, latency, metrics), "folder": name})
    describe = getattr(engine, "describe", None)
    result = {"model": model_name, "engine": describe() if callable(describe) else str(engine),
              "robot": base.name, "rate_hz": base.rate_hz, "seed": seed, "episodes": episodes,
              "max_seconds": max_seconds, "camera": f"{width}x{height}", "cells": cells}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text(results_table(result) + "\n")
    return result


def results_table(result: dict[str, Any]) -> str:
    """The markdown table of ``latency_table``'s result."""
    lines = [
        f"Closed loop on the simulated robot, per cell: episodes {result['episodes']} (scenes seed {result['seed']}), "
        f"at most {result['max_seconds']:g} s each; {result['robot']} at {result['rate_hz']:g} Hz, model {result['model']} "
        f"({result['engine']}), cameras {result['camera']}. Inference latency simulated on the replay clock.",
        "",
        "| execution | latency [ms] | success | 95 % CI | commands/s | held ticks | "
        "largest joint jump [rad] | mean per-episode largest jump [rad] |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]

    def number(value: Any, fmt: str) -> str:
        return "n/a" if value is None else format(value, fmt)

    for c in result["cells"]:
        low, high = c["success_rate_ci95"]
        rate = ("n/a" if c["success_rate"] is None
                else f"{c['successes']}/{c['episodes']} = {100 * c['success_rate']:.0f} %")
        held = "n/a" if c["held_tick_fraction"] is None else f"{100 * c['held_tick_fraction']:.1f} %"
        lines.append(f"| {c['mode']} | {c['latency_ms']:g} | {rate} | {100 * low:.0f}-{100 * high:.0f} % | "
                     f"{number(c['commands_per_s'], '.1f')} | {held} | {number(c['max_joint_step'], '.4f')} | "
                     f"{number(c['mean_max_joint_step'], '.4f')} |")
    return "\n".join(lines)


def _number_list(text: str) -> list[float]:
    try:
        values = [float(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated milliseconds, found {text!r}") from None
    if not values or any(v < 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected comma-separated milliseconds >= 0, found {text!r}")
    return values


def _mode_list(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        raise argparse.ArgumentTypeError(f"expected a comma-separated subset of {','.join(MODES)}, found {text!r}")
    return modes


def build_arg_parser(prog: str = "python -m hpt_ros.evaluate.latency_table") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="", help="checkpoint dir or .onnx (default: the shipped model)")
    parser.add_argument("--robot", default="franka_fr3", help="robot spec YAML or shipped name")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per cell (default 20)")
    parser.add_argument("--seed", type=int, default=1000, help="scene seed (default 1000: held-out scenes)")
    parser.add_argument("--out", default="latency_table", help="output folder (default ./latency_table)")
    parser.add_argument("--latencies", type=_number_list, default=list(DEFAULT_LATENCIES_MS),
                        help="simulated inference latencies [ms], comma-separated (default 0,50,100,200,400)")
    parser.add_argument("--modes", type=_mode_list, default=list(MODES), help="sync,async (default both)")
    parser.add_argument("--max-seconds", type=float, default=15.0, help="episode time limit, simulated [s]")
    parser.add_argument("--engine", default="", choices=["", "torch", "onnxruntime"])
    parser.add_argument("--precision", default="", choices=["", "fp32", "bf16", "fp16"])
    parser.add_argument("--threads", type=int, default=None, help="inference threads")
    parser.add_argument("--videos", action="store_true", help="also write each episode's video")
    parser.add_argument("--reuse", action="store_true", help="keep cells whose metrics.json matches")
    return parser


def cli(argv: Sequence[str], prog: str = "hpt-ros latency-table") -> int:
    """``hpt-ros latency-table``: the same as running the module."""
    return main(argv, prog=prog)


def main(argv: Sequence[str] | None = None, prog: str = "python -m hpt_ros.evaluate.latency_table") -> int:
    args = build_arg_parser(prog).parse_args(None if argv is None else list(argv))
    if args.episodes < 1:
        raise SystemExit("--episodes must be at least 1")
    result = latency_table(args.model or None, episodes=args.episodes, seed=args.seed, out=args.out,
                           robot=args.robot, latencies_ms=args.latencies, modes=args.modes,
                           max_seconds=args.max_seconds, backend=args.engine or None,
                           precision=args.precision or None, threads=args.threads, videos=args.videos,
                           reuse=args.reuse)
    print(results_table(result))
    print(f"\nwritten: {Path(args.out) / 'results.md'}, {Path(args.out) / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
