"""Closed-loop success of several controllers side by side, on the same held-out scenes.

    python -m hpt_ros.evaluate.compare --episodes 50 --seed 1000 --out eval/ \
        expert=expert shipped=models/franka_fr3_feed_dog untrained=runs/untrained/model

Each ``name=model`` is run by ``sim_evaluate`` (``expert`` is the scripted teacher that
made the demonstrations) over the scenes ``(seed, 0..episodes-1)``; ``results.md`` and
``results.json`` in ``--out`` hold one row per controller: success rate with its 95 %
Wilson interval, time to success, safety events. Each controller's own ``metrics.json``,
``report.md`` and videos are in ``--out/<name>/``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import Any, Sequence

__all__ = ["compare", "results_table"]


def _reusable(path: Path, model: str, episodes: int, seed: int, max_seconds: float) -> dict[str, Any] | None:
    """The metrics in ``path`` if they are of the same model on the same scenes (a resumed comparison)."""
    try:
        metrics = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    same = (metrics.get("model") == str(model) and metrics.get("seed") == seed
            and metrics.get("max_seconds") == max_seconds and metrics.get("overall", {}).get("episodes") == episodes)
    return metrics if same else None


def compare(models: dict[str, str], *, episodes: int, seed: int, out: str | Path, robot: str = "franka_fr3",
            max_seconds: float = 15.0, videos: bool = True, threads: int | None = None,
            reuse: bool = False) -> dict[str, Any]:
    """Evaluate every ``name: model`` on the same scenes; write and return ``{name: overall metrics}``.

    ``reuse``: keep a controller's earlier ``metrics.json`` in ``out/<name>`` when it is of the
    same model, scenes and time limit, instead of running it again.
    """
    from .sim_eval import sim_evaluate

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    rows: dict[str, Any] = {}
    for name, model in models.items():
        metrics = _reusable(out / name / "metrics.json", model, episodes, seed, max_seconds) if reuse else None
        if metrics is None:
            metrics = sim_evaluate(model, episodes=episodes, seed=seed, out=out / name, robot=robot,
                                   max_seconds=max_seconds, videos=videos, threads=threads)
        else:
            logging.getLogger("hpt_ros.evaluate").info("%s: reusing %s", name, out / name / "metrics.json")
        rows[name] = {"model": str(model), **metrics["overall"]}
    result = {"seed": seed, "episodes": episodes, "max_seconds": max_seconds, "rows": rows}
    (out / "results.json").write_text(json.dumps(result, indent=2))
    (out / "results.md").write_text(results_table(result) + "\n")
    return result


def results_table(result: dict[str, Any]) -> str:
    """The Markdown table of ``compare``'s result."""
    lines = [f"Closed-loop success on {result['episodes']} held-out scenes (seed {result['seed']}, "
             f"{result['max_seconds']:g} s limit), judged by the physics:", "",
             "| controller | success | 95 % interval | mean time to success | hold events | inference failures |",
             "|---|---|---|---|---|---|"]
    for name, r in result["rows"].items():
        low, high = r["success_rate_ci95"]
        mean = r["time_to_success_s"]["mean"]
        lines.append(f"| {name} | {r['successes']}/{r['episodes']} = {100 * r['success_rate']:.0f} % "
                     f"| {100 * low:.0f}-{100 * high:.0f} % | {'-' if mean is None else f'{mean:.1f} s'} "
                     f"| {r['safety']['hold_events']} | {r['safety']['inference_failures']} |")
    return "\n".join(lines)


def cli(argv: Sequence[str] | None = None, prog: str = "python -m hpt_ros.evaluate.compare") -> int:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    parser.add_argument("models", nargs="+", metavar="NAME=MODEL", help="a name and a checkpoint, .onnx or 'expert'")
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--seed", type=int, default=1000)
    parser.add_argument("--out", required=True)
    parser.add_argument("--robot", default="franka_fr3")
    parser.add_argument("--max-seconds", type=float, default=15.0)
    parser.add_argument("--no-video", action="store_true")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--reuse", action="store_true",
                        help="keep earlier results in --out of the same model on the same scenes")
    args = parser.parse_args(argv)
    models = {}
    for item in args.models:
        name, sep, model = item.partition("=")
        if not sep or not name or not model:
            parser.error(f"expected NAME=MODEL, found {item!r}")
        models[name] = model
    if not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="[%(levelname)s] [%(name)s]: %(message)s")
    result = compare(models, episodes=args.episodes, seed=args.seed, out=args.out, robot=args.robot,
                     max_seconds=args.max_seconds, videos=not args.no_video, threads=args.threads, reuse=args.reuse)
    print(results_table(result))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(cli())
