"""``evaluate_bags``: replay every bag through the policy node, score it, write metrics, plots and a report."""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hpt_ros.spec import RobotSpec, load_spec

from .actions import ActionLayout
from .episode import EpisodeResult, replay_episode
from .metrics import error_metrics, json_safe

__all__ = ["ALIGNMENT", "METRICS_FILE", "REPORT_FILE", "evaluate_bags"]

logger = logging.getLogger("hpt_ros.evaluate")

METRICS_FILE = "metrics.json"
REPORT_FILE = "report.md"
ALIGNMENT = (
    "The recorded action at a control tick is the latest recorded message at or before the tick time "
    "(bag receive timestamps), per stream (arm command, gripper); ticks before the first recorded "
    "action are not scored. The policy ticks at start + k / rate_hz of each bag and sees every sensor "
    "message stamped at or before the tick, as live with use_sim_time."
)
_EXPECTED = ("BagError", "EvaluationError", "MessageConversionError", "TransportError", "SerializationError",
             "SpecError")  # fmt: skip


@contextlib.contextmanager
def _quiet(enabled: bool) -> Iterator[None]:
    """Hold/resume messages are part of what is counted: keep them out of the console while replaying."""
    if not enabled:
        yield
        return
    names = {"hpt_ros.safety": logging.ERROR, "hpt_ros.policy_node": logging.WARNING}
    saved = {name: logging.getLogger(name).level for name in names}
    for name, level in names.items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)


def _names(bags: Sequence[Path]) -> list[str]:
    names, seen = [], Counter[str]()
    for bag in bags:
        base = bag.stem if bag.is_file() else bag.name
        base = re.sub(r"[^A-Za-z0-9_.-]+", "_", base) or "bag"
        seen[base] += 1
        names.append(base if seen[base] == 1 else f"{base}_{seen[base]}")
    return names


def _held(reasons: Iterable[str]) -> dict[str, int]:
    counts = Counter(r for r in reasons if r)
    return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))


def _episode_entry(result: EpisodeResult, layout: ActionLayout, name: str) -> tuple[dict[str, Any], np.ndarray]:
    evaluated = result.evaluated
    commanded = result.commanded
    errors = layout.difference(result.predicted[evaluated], result.recorded[evaluated])
    entry: dict[str, Any] = {
        "bag": result.bag,
        "name": name,
        "status": "ok",
        "error": None,
        "duration_s": result.duration_s,
        "start_time": result.start_ns / 1e9,
        "ticks": len(result.reasons),
        "ticks_commanded": int(commanded.sum()),
        "ticks_without_recorded_action": int((commanded & ~evaluated).sum()),
        "ticks_held": int((~commanded).sum()),
        "held_reasons": _held(result.reasons),
        "dimensions_scored": [label for label in layout.labels if label not in result.not_scored],
        "dimensions_not_scored": dict(result.not_scored),
    }
    entry.update(error_metrics(errors, layout))
    entry["timing"] = result.timing
    entry["info"] = result.info
    return entry, errors


def _error_entry(bag: Path, name: str, exc: BaseException) -> dict[str, Any]:
    return {
        "bag": str(bag),
        "name": name,
        "status": "error",
        "error": str(exc),
        "error_type": type(exc).__name__,
        "topic": getattr(exc, "topic", None),
        "topics": list(getattr(exc, "topics", None) or ([exc.topic] if getattr(exc, "topic", None) else [])),
    }


def _overall_dimensions(ok: list[dict[str, Any]], labels: Sequence[str]) -> dict[str, Any]:
    """Which dimensions some episode scored, which none did (and why), and which episodes lack which."""
    scored = [label for label in labels if any(label in e["dimensions_scored"] for e in ok)]
    partial = {e["name"]: e["dimensions_not_scored"] for e in ok if e["dimensions_not_scored"]}
    not_scored = {}
    for label in labels:
        if label not in scored and ok:
            reasons = dict.fromkeys(e["dimensions_not_scored"].get(label, "") for e in ok)
            not_scored[label] = "; ".join(r for r in reasons if r) + " (every episode)"
    return {"dimensions_scored": scored, "dimensions_not_scored": not_scored, "episodes_missing_dimensions": partial}


def _overall_timing(entries: list[dict[str, Any]]) -> dict[str, Any]:
    timings = [e["timing"] for e in entries]
    duration = sum(t["bag_duration_s"] for t in timings)
    wall = sum(t["replay_wall_s"] for t in timings)
    breakdown: dict[str, float] = {}
    for t in timings:
        for key, value in t["breakdown_s"].items():
            breakdown[key] = breakdown.get(key, 0.0) + value
    return {
        "bag_duration_s": duration,
        "replay_wall_s": wall,
        "speed_x_realtime": duration / wall if wall > 0 else None,
        "warmup_s": sum(t["warmup_s"] for t in timings),
        "breakdown_s": breakdown,
        "inferences": sum(t["inferences"] for t in timings),
    }


def _load_engine(engine: Any, model: Any, spec: RobotSpec, precision: str | None, threads: int | None,
                 engine_options: dict[str, Any]) -> Any:  # fmt: skip
    if engine is not None and not isinstance(engine, str):
        return engine  # an Engine instance
    from hpt_ros.engine.factory import load_engine

    return load_engine(model, spec, backend=engine or None, precision=precision, threads=threads, **engine_options)


def evaluate_bags(
    bags: Sequence[str | Path],
    spec: RobotSpec | str | Path,
    model: str | Path | None,
    out_dir: str | Path,
    *,
    engine: Any = None,
    precision: str | None = None,
    threads: int | None = None,
    action_topic: str | None = None,
    action_joint_names: Sequence[str] | None = None,
    recover: bool = False,
    distro: str | None = None,
    enable_from_bag: bool = True,
    plots: bool = True,
    videos: bool = True,
    progress: bool = True,
    quiet: bool = True,
    engine_options: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Replay-evaluate ``model`` on ``bags``; write ``metrics.json``, ``report.md``, ``plots/`` and ``videos/``
    to ``out_dir``.

    Args:
        bags: rosbag2 directories or bare ``.mcap`` / ``.db3`` files (any storage, metadata
            versions 4-9, Humble / Jazzy / Foxy definitions).
        spec: the robot spec (or its YAML path / shipped name).
        model: checkpoint folder or ``.onnx`` (None: ``spec.model.path``; only a label when
            ``engine`` is an Engine).
        out_dir: where the results go (created).
        engine: an ``Engine`` instance, or the backend name ("torch", "onnxruntime";
            default: the spec's).
        precision: "fp32", "bf16" or "fp16" (default: the spec's).
        threads: torch / onnxruntime intra-op threads (fix it to compare runs across machines).
        action_topic: take the recorded actions from this leader-arm sensor_msgs/JointState
            topic instead of the spec's command (+ gripper) topic; ``action_joint_names``:
            its joints matching ``spec.action.joints`` in order (default: the same names).
        recover: read the complete messages of truncated MCAP files instead of failing them.
        distro: ROS 2 distribution for type definitions a bag does not carry (default: the
            bag's, else Humble).
        enable_from_bag: let the bag's enable topic (when present) gate motion.
        plots: write PNG plots; videos: write an mp4 per episode (cameras beside the
            predicted and recorded actions); progress: a tqdm bar over the bags; quiet: keep
            per-tick hold/resume log lines out of the console.
        engine_options: passed to ``load_engine`` (e.g. ``{"mode": "eager"}``).

    Returns the metrics dictionary that was written to ``metrics.json``. A bag that cannot
    be evaluated (missing topic, wrong type, truncated file, messages that do not convert)
    gets ``status: "error"`` with the message, naming the bag and the topic; the other bags
    are still evaluated. Problems that concern every bag (spec, model) raise.
    """
    from tqdm import tqdm

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    spec_obj = spec if isinstance(spec, RobotSpec) else load_spec(spec)
    layout = ActionLayout.of(spec_obj)
    bag_paths = [Path(b) for b in dict.fromkeys(str(b) for b in bags)]
    if len(bag_paths) != len(bags):
        logger.warning("the same bag was given more than once: evaluating it once")
    names = _names(bag_paths)

    torch_threads = None
    try:
        import torch

        torch.manual_seed(0)
        if threads:
            torch.set_num_threads(int(threads))
        torch_threads = torch.get_num_threads()
    except ImportError:  # pragma: no cover - torch is a dependency
        pass
    the_engine = _load_engine(engine, model, spec_obj, precision, threads, dict(engine_options or {}))
    describe = the_engine.describe() if hasattr(the_engine, "describe") else type(the_engine).__name__

    entries: dict[str, dict[str, Any]] = {}
    all_errors: list[np.ndarray] = []
    results: dict[str, EpisodeResult] = {}
    warmed: set[tuple[int, int]] = set()
    bar = tqdm(list(zip(bag_paths, names)), desc="replay", unit="bag", disable=not progress, file=sys.stderr)
    with _quiet(quiet):
        for bag, name in bar:
            bar.set_postfix_str(name)
            try:
                result = replay_episode(bag, spec_obj, the_engine, action_topic=action_topic,
                                        action_joint_names=action_joint_names, recover=recover, distro=distro,
                                        enable_from_bag=enable_from_bag, warmed_up=warmed)  # fmt: skip
            except Exception as exc:
                if not any(cls.__name__ in _EXPECTED for cls in type(exc).__mro__):
                    logger.exception("%s: unexpected failure", bag)
                entries[str(bag)] = _error_entry(bag, name, exc)
                logger.error("%s", exc)
                continue
            entry, errors = _episode_entry(result, layout, name)
            entries[str(bag)] = entry
            results[str(bag)] = result
            all_errors.append(errors)
            speed = entry["timing"]["speed_x_realtime"]
            bar.set_postfix_str(f"{name}: {speed:.2f}x real time" if speed else name)
    bar.close()

    ok = [e for e in entries.values() if e["status"] == "ok"]
    errors = np.concatenate(all_errors) if all_errors else np.zeros((0, layout.dim))
    overall: dict[str, Any] = {
        "episodes_evaluated": len(ok),
        "episodes_failed": len(entries) - len(ok),
        "ticks": sum(e["ticks"] for e in ok),
        "ticks_commanded": sum(e["ticks_commanded"] for e in ok),
        "ticks_without_recorded_action": sum(e["ticks_without_recorded_action"] for e in ok),
        "ticks_held": sum(e["ticks_held"] for e in ok),
        "held_reasons": _held(r for res in results.values() for r in res.reasons),
    }
    overall.update(_overall_dimensions(ok, layout.labels))
    overall.update(error_metrics(errors, layout))
    overall["timing"] = _overall_timing(ok)

    action = spec_obj.action
    if action_topic is not None:
        source = f"leader arm JointState {action_topic}"
    else:
        source = f"{action.command.topic} [{action.command.type}]" + (
            f" + {action.gripper.topic} [{action.gripper.type}]" if action.gripper else "")
    execution = spec_obj.execution
    metrics: dict[str, Any] = {
        "format": "hpt_ros.eval",
        "format_version": 1,
        "setup": {
            "robot": spec_obj.name,
            "spec_source": spec_obj.source,
            "spec_hash": spec_obj.spec_hash,
            "model": str(model) if model is not None else describe,
            "engine": describe,
            "torch_threads": torch_threads,
            "rate_hz": spec_obj.rate_hz,
            "execution": execution.mode + (f" (coefficient {execution.ensemble_coefficient:g})"
                                           if execution.mode == "temporal_ensemble"
                                           else f" (every {execution.replan_every})")
                         + (", asynchronous" if execution.asynchronous else ""),
            "action_kind": action.kind,
            "action_dims": list(layout.labels),
            "action_source": source,
            "action_topic": action_topic,
            "action_joint_names": list(action_joint_names) if action_joint_names else None,
            "alignment": ALIGNMENT,
            "enable": (f"the node starts enabled; a bag's {spec_obj.safety.enable_topic} messages gate motion "
                       "from their timestamps on" if enable_from_bag
                       else "the node is enabled for the whole bag (enable topic ignored)"),
            "recover": recover,
            "normalization": "2 * (x - lower) / (upper - lower) - 1 with the spec's joint limits",
        },
        "overall": overall,
        "episodes": entries,
        "plots": {},
    }  # fmt: skip

    if plots:
        plot_dir = out / "plots"
        plot_dir.mkdir(exist_ok=True)
        from .plots import plot_episode, plot_error_summary

        t0 = time.perf_counter()
        summary = plot_error_summary(errors, layout, plot_dir / "error_summary.png",
                                     f"{spec_obj.name}: {len(ok)} episodes, {errors.shape[0]} ticks evaluated")
        metrics["plots"]["error_summary"] = summary.relative_to(out).as_posix()
        for key, result in results.items():
            entry = entries[key]
            title = (f"{entry['name']}: MAE {entry['mae_normalized_overall'] or float('nan'):.4f} normalised, "
                     f"{entry['ticks_evaluated']}/{entry['ticks']} ticks evaluated")  # fmt: skip
            file = plot_episode(result, layout, plot_dir / f"{entry['name']}_actions.png", title, spec_obj.period_s)
            entry["plot"] = file.relative_to(out).as_posix()
        logger.debug("plots took %.2f s", time.perf_counter() - t0)

    if videos:
        from .videos import write_replay_video

        t0 = time.perf_counter()
        for key, result in results.items():
            entry = entries[key]
            file = out / "videos" / f"{entry['name']}.mp4"
            title = f"{entry['name']}: policy (blue) and recorded (grey) actions; cursor: the frame's tick"
            try:
                entry["video_frames"] = write_replay_video(result.bag, spec_obj, result, layout, file, title,
                                                           distro=distro, recover=recover)
            except Exception as exc:  # a video is a view of the numbers: never lose them over it
                logger.warning("%s: no video: %s", result.bag, exc)
                entry["video_error"] = str(exc)
                continue
            entry["video"] = file.relative_to(out).as_posix()
        logger.debug("videos took %.2f s", time.perf_counter() - t0)

    safe = json_safe(metrics)
    (out / METRICS_FILE).write_text(json.dumps(safe, indent=2, allow_nan=False) + "\n", encoding="utf-8")
    from .report import write_report

    write_report(safe, out / REPORT_FILE)
    return safe
