"""``report.md`` of a closed-loop simulated evaluation (``hpt-ros sim-eval``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["write_sim_report"]


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.0f} %"


def write_sim_report(metrics: dict[str, Any], path: Path) -> Path:
    """A Markdown summary: the success rate with its interval, one row per episode, then every file linked."""
    o = metrics["overall"]
    low, high = o["success_rate_ci95"]
    tts = o["time_to_success_s"]
    safety = o["safety"]
    lines = [
        f"# Closed-loop evaluation: {metrics['task']} on {metrics['robot']}",
        "",
        f"- model: `{metrics['model']}` ({metrics['engine']})",
        f"- episodes: {o['episodes']} (scene seed {metrics['seed']}, episodes 0-{o['episodes'] - 1}), "
        f"time limit {metrics['max_seconds']:g} s simulated, cameras {metrics['camera']}",
        f"- **success rate: {o['successes']}/{o['episodes']} = {_pct(o['success_rate'])}** "
        f"(95 % Wilson interval {_pct(low)} - {_pct(high)})",
        f"- time to success: mean {tts['mean']:.2f} s, median {tts['median']:.2f} s" if tts["mean"] is not None
        else "- time to success: no success",
        f"- safety: {safety['hold_events']} hold events, {safety['held_ticks']} held ticks "
        f"({', '.join(f'{k}: {v}' for k, v in sorted(safety['hold_reasons'].items())) or 'none'}), "
        f"{safety['inference_failures']} inference failures, largest joint step between commands "
        f"{safety['max_joint_step']:.4f} rad",
        "",
        "Success: the treat at rest inside the bowl, judged by the physics.",
        "",
        *(["![the first successful episode](success.gif)", ""] if (path.parent / "success.gif").exists() else []),
        "| episode | outcome | time to success [s] | closest treat-bowl [m] | commands | held ticks | video |",
        "|---|---|---|---|---|---|---|",
    ]
    for e in metrics["per_episode"]:
        video = f"[mp4](videos/{e['video']})" if e.get("video") else "-"
        tts_e = "-" if e["time_to_success"] is None else f"{e['time_to_success']:.2f}"
        closest = "-" if e["closest_treat_to_bowl"] is None else f"{e['closest_treat_to_bowl']:.3f}"
        lines.append(f"| {e['episode']} | {'success' if e['success'] else 'failure'} | {tts_e} | {closest} "
                     f"| {e['commands']} | {e['held_ticks']} | {video} |")
    videos = [e["video"] for e in metrics["per_episode"] if e.get("video")]
    lines += ["", "## Files", "", "- [metrics.json](metrics.json): every number above, per episode"]
    if (path.parent / "success.gif").exists():
        lines.append("- [success.gif](success.gif): the first successful episode")
    lines += [f"- [videos/{v}](videos/{v})" for v in videos]
    if not videos:
        lines.append("- no videos (run without `--no-video` for one per episode)")
    path.write_text("\n".join(lines) + "\n")
    return path
