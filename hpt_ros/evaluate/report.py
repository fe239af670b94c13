"""``report.md``: what a person reads first after ``hpt-ros eval`` (numbers from metrics.json)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_report"]


def _f(value: Any, digits: int = 4) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.{digits}g}"
    return str(value)


def _reasons(held: dict[str, int]) -> str:
    return ", ".join(f"{reason} × {n}" for reason, n in held.items()) or "–"


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(cell.replace("|", "\\|") for cell in row) + " |" for row in rows]
    return lines


def _dimension_lines(overall: dict[str, Any]) -> list[str]:
    """Which action dimensions were scored, and why the others were not (nothing when all were, everywhere)."""
    partial = overall.get("episodes_missing_dimensions") or {}
    not_scored = overall.get("dimensions_not_scored") or {}
    if not partial and not not_scored:
        return []
    scored = overall.get("dimensions_scored") or []
    lines = ["", "## Action dimensions scored", "",
             f"Scored: {', '.join(f'`{d}`' for d in scored) or 'none'}. A bag without part of the action is "
             "scored on the dimensions it records; the figures of a dimension pool only the episodes that "
             "record it (`ticks_evaluated_per_dimension` in metrics.json)."]  # fmt: skip
    if not_scored:
        lines += ["", "Not scored in any episode:", ""]
        lines += [f"- `{d}`: {why}" for d, why in not_scored.items()]
    if partial:
        lines += ["", "Episodes scored on part of the action:", ""]
        lines += _table(["episode", "not scored", "why"],
                        [[f"`{name}`", ", ".join(f"`{d}`" for d in dims),
                          "; ".join(dict.fromkeys(dims.values()))] for name, dims in partial.items()])  # fmt: skip
    return lines


def write_report(metrics: dict[str, Any], path: Path) -> Path:
    """Write the markdown report of ``metrics`` (as written to metrics.json) to ``path``."""
    overall = metrics["overall"]
    setup = metrics["setup"]
    episodes = metrics["episodes"]
    lines = [
        f"# Replay evaluation: {setup['robot']}",
        "",
        (f"Model `{setup['model']}` on engine *{setup['engine']}* ({setup['torch_threads']} torch threads), "
         f"{setup['rate_hz']:g} Hz control, execution *{setup['execution']}*. "
         "Each bag was replayed through the live `PolicyNode` on a simulated clock; the policy's commands "
         f"are compared with the recorded actions ({setup['action_source']}). All numbers: `metrics.json`."),
        "",
        "## Summary",
        "",
    ]
    lines += _table(
        ["episodes", "failed", "ticks", "evaluated", "held", "MAE (norm.)", "RMSE (norm.)", "max abs err (norm.)",
         "speed"],
        [[
            str(overall["episodes_evaluated"]), str(overall["episodes_failed"]), str(overall["ticks"]),
            str(overall["ticks_evaluated"]), str(overall["ticks_held"]), _f(overall["mae_normalized_overall"]),
            _f(overall["rmse_normalized_overall"]), _f(overall["max_abs_error_normalized_overall"]),
            f"{_f(overall['timing']['speed_x_realtime'], 3)}× real time",
        ]],
    )  # fmt: skip
    if overall["held_reasons"]:
        lines += ["", f"Held by safety (not errors): {_reasons(overall['held_reasons'])}."]
    lines += _dimension_lines(overall)
    failed = {bag: e for bag, e in episodes.items() if e["status"] != "ok"}
    if failed:
        lines += ["", "## Bags that could not be evaluated", ""]
        lines += [f"- `{bag}`: {e['error']}" for bag, e in failed.items()]
    if overall["ticks_evaluated"]:
        lines += ["", "## Per action dimension (all episodes)", ""]
        names = list(overall["mae"])
        lines += _table(
            ["dimension", "MAE", "RMSE", "max abs err", "MAE (norm.)", "RMSE (norm.)", "max abs err (norm.)"],
            [[n, _f(overall["mae"][n]), _f(overall["rmse"][n]), _f(overall["max_abs_error"][n]),
              _f(overall["mae_normalized"][n]), _f(overall["rmse_normalized"][n]),
              _f(overall["max_abs_error_normalized"][n])] for n in names],
        )  # fmt: skip
    ok = {bag: e for bag, e in episodes.items() if e["status"] == "ok"}
    if ok:
        lines += ["", "## Episodes", ""]
        rows = []
        for e in ok.values():
            plot, video = e.get("plot"), e.get("video")
            rows.append([
                f"`{e['name']}`", f"{e['duration_s']:.2f} s", str(e["ticks"]), str(e["ticks_evaluated"]),
                _reasons(e["held_reasons"]), _f(e["mae_normalized_overall"]), _f(e["rmse_normalized_overall"]),
                _f(e["max_abs_error_normalized_overall"]), f"{_f(e['timing']['speed_x_realtime'], 3)}×",
                f"[plot]({plot})" if plot else "–", f"[mp4]({video})" if video else "–",
            ])  # fmt: skip
        lines += _table(["episode", "duration", "ticks", "evaluated", "held", "MAE (norm.)", "RMSE (norm.)",
                         "max abs err (norm.)", "speed", "plot", "video"], rows)  # fmt: skip
    plots = metrics.get("plots") or {}
    if plots:
        lines += ["", "## Plots", ""]
        if plots.get("error_summary"):
            lines += [f"![error distribution]({plots['error_summary']})", ""]
        for e in ok.values():
            if e.get("plot"):
                lines += [f"![{e['name']}]({e['plot']})", ""]
    videos = [e for e in ok.values() if e.get("video")]
    if videos:
        lines += ["", "## Videos", "",
                  "One frame per control tick: the cameras as the policy saw them, the policy's and the recorded "
                  "actions below, a cursor at the tick.", ""]  # fmt: skip
        lines += [f"- [{e['name']}]({e['video']}) ({e.get('video_frames', '?')} frames at {setup['rate_hz']:g} Hz)"
                  for e in videos]
    timing = overall["timing"]
    if timing.get("breakdown_s"):
        lines += ["", "## Where the replay time went", ""]
        total = timing["replay_wall_s"] or 1.0
        lines += _table(["part", "seconds", "share"],
                        [[k.replace("_", " "), f"{v:.3f}", f"{100 * v / total:.0f} %"]
                         for k, v in timing["breakdown_s"].items()])  # fmt: skip
        lines += ["", (f"{timing['bag_duration_s']:.2f} s of bags replayed in {timing['replay_wall_s']:.2f} s "
                       f"({_f(timing['speed_x_realtime'], 3)}× real time; engine warm-up of "
                       f"{timing['warmup_s']:.2f} s not included).")]  # fmt: skip
    lines += [
        "",
        "## How to read this",
        "",
        f"- **Alignment.** {setup['alignment']}",
        ("- **Normalised units** are the spec's joint-limit normalisation, the space the HPT head predicts in: "
         "`2 (x - lower) / (upper - lower) - 1`; an error of 0.01 is 0.5 % of a joint's range."),
        ("- **Held ticks** (stale or missing sensors, `disabled`, inference failures) sent no command live "
         "either: they are counted per reason, not scored."),
        f"- **Enable gating.** {setup['enable']}",
        ("- **Timing.** Replay runs callbacks inline on a simulated clock: inference costs wall time, not "
         "simulated time, so sensor ages are those of a computer fast enough for the control rate."),
        "",
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    return path
