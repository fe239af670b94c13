"""``hpt-ros sim-eval``: closed-loop episodes through the real nodes on the simulated robot, judged by physics."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest

from hpt_ros.sim import mjcf  # noqa: F401  (sets MUJOCO_GL before mujoco is imported)

from conftest import require_module

require_module("mujoco")

from hpt_ros.evaluate.sim_eval import wilson_interval  # noqa: E402
from hpt_ros.sim.kinematics import READY_POSE  # noqa: E402


def test_wilson_interval_matches_published_values() -> None:
    # Wilson score intervals at 95 % (z = 1.96), as tabulated by Newcombe (1998)
    assert wilson_interval(8, 10) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    assert wilson_interval(0, 10) == pytest.approx((0.0, 0.2775), abs=1e-4)
    assert wilson_interval(50, 50)[0] == pytest.approx(0.9287, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_the_expert_succeeds_and_the_outputs_say_so(tmp_path) -> None:
    import cv2

    from hpt_ros.cli import main

    out = tmp_path / "expert"
    assert main(["sim-eval", "--model", "expert", "--episodes", "2", "--seed", "77", "--out", str(out)]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    overall = metrics["overall"]
    assert overall["episodes"] == 2 and overall["successes"] == 2 and overall["success_rate"] == 1.0
    assert overall["success_rate_ci95"] == pytest.approx(list(wilson_interval(2, 2)), abs=1e-4)
    for e in metrics["per_episode"]:
        assert e["success"] and 3.0 < e["time_to_success"] < 12.0
        assert e["duration_s"] == pytest.approx(e["time_to_success"] + 1.0, abs=0.05)  # stops 1 s after success
        assert e["closest_treat_to_bowl"] < mjcf.BOWL_INNER_RADIUS
        video = cv2.VideoCapture(str(out / "videos" / e["video"]))
        frames = int(video.get(cv2.CAP_PROP_FRAME_COUNT))
        assert abs(frames - 15 * e["duration_s"]) <= 3
        ok, frame = video.read()
        assert ok and frame.shape[:2] == (448, 448)
    report = (out / "report.md").read_text()
    assert "2/2 = 100 %" in report and "videos/episode_0001.mp4" in report
    assert (out / "success.gif").stat().st_size > 10_000 and "(success.gif)" in report
    files = report.split("## Files", 1)[1]  # every output linked, and every link leads to a file
    for name in ["metrics.json", "success.gif"] + [f"videos/{e['video']}" for e in metrics["per_episode"]]:
        assert f"]({name})" in files and (out / name).is_file(), name


def test_a_policy_that_holds_still_fails_through_the_policy_node(tmp_path, franka_spec_path) -> None:
    from hpt_ros.engine.factory import build_policy_for_spec
    from hpt_ros.evaluate.sim_eval import sim_evaluate
    from hpt_ros.model import save_checkpoint
    from hpt_ros.spec import load_spec
    from hpt_ros.train.baselines import constant_action_policy

    spec = load_spec(franka_spec_path)
    ready = [*READY_POSE, 0.04]
    model = tmp_path / "hold"
    save_checkpoint(model, constant_action_policy(build_policy_for_spec(spec, "tiny", random_vision=True), ready),
                    {"robot": spec.name})
    metrics = sim_evaluate(str(model), episodes=1, seed=5, out=tmp_path / "eval", robot=str(franka_spec_path),
                           max_seconds=3.0, videos=False, progress=False)
    e = metrics["per_episode"][0]
    assert metrics["overall"]["successes"] == 0 and not e["success"] and e["time_to_success"] is None
    assert e["duration_s"] == pytest.approx(3.0, abs=0.01)
    assert 40 <= e["commands"] <= 46  # 15 Hz for 3 s, through the policy node
    assert e["held_ticks"] == 0 and e["video"] is None
    assert e["max_joint_step"] < 0.01 and math.isfinite(e["closest_treat_to_bowl"])


def test_compare_tables_controllers_and_reuses_matching_results(tmp_path) -> None:
    from hpt_ros.evaluate.compare import cli, compare

    out = tmp_path / "cmp"
    first = compare({"expert": "expert"}, episodes=1, seed=9, out=out, videos=False)
    stamp = (out / "expert" / "metrics.json").stat().st_mtime_ns
    again = compare({"expert": "expert"}, episodes=1, seed=9, out=out, videos=False, reuse=True)
    assert (out / "expert" / "metrics.json").stat().st_mtime_ns == stamp  # not run again
    assert again["rows"] == first["rows"] and first["rows"]["expert"]["successes"] == 1
    table = (out / "results.md").read_text()
    assert "| expert | 1/1 = 100 % | 21-100 % |" in table
    compare({"expert": "expert"}, episodes=1, seed=10, out=out, videos=False, reuse=True)  # other scenes: runs
    assert (out / "expert" / "metrics.json").stat().st_mtime_ns != stamp
    with pytest.raises(SystemExit):
        cli(["expert", "--out", str(out)])  # not NAME=MODEL
