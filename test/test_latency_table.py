"""The closed-loop latency table at a tiny size: two cells (sync and async at 100 ms), one short
episode each with small cameras and a scripted engine, through the real sim evaluation."""

from __future__ import annotations

import argparse
import json

import pytest

from hpt_ros.evaluate.latency_table import build_arg_parser, latency_table, write_cell_spec
from hpt_ros.spec import load_spec

from conftest import require_module
from test_async_replay import ReachEngine


def test_a_cell_spec_differs_from_the_robot_spec_only_in_its_execution(tmp_path) -> None:
    base = load_spec("franka_fr3")
    cell = load_spec(write_cell_spec(base, "async", 200, tmp_path / "robot.yaml"))
    assert cell.execution.asynchronous and cell.execution.inference_latency_ms == 200.0
    assert cell.execution.mode == base.execution.mode and cell.action == base.action and cell.limits == base.limits
    with pytest.raises(ValueError, match="'fast'"):
        write_cell_spec(base, "fast", 0, tmp_path / "bad.yaml")


def test_the_command_line_reads_lists_of_latencies_and_modes() -> None:
    args = build_arg_parser().parse_args(["--latencies", "0,100", "--modes", "async"])
    assert args.latencies == [0.0, 100.0] and args.modes == ["async"]
    default = build_arg_parser().parse_args([])
    assert default.latencies == [0, 50, 100, 200, 400] and default.modes == ["sync", "async"]
    with pytest.raises(SystemExit):
        build_arg_parser().parse_args(["--modes", "sync,later"])
    with pytest.raises(argparse.ArgumentTypeError):
        from hpt_ros.evaluate.latency_table import _number_list

        _number_list("-5")


def test_the_command_line_dispatches_to_it(capsys) -> None:
    from hpt_ros.cli import main

    with pytest.raises(SystemExit):
        main(["latency-table", "--modes", "sync,later"])
    assert "usage: hpt-ros latency-table" in capsys.readouterr().err


def test_two_cells_in_closed_loop(tmp_path) -> None:
    require_module("mujoco")
    from hpt_ros.evaluate.sim_eval import wilson_interval

    result = latency_table(episodes=1, seed=3, out=tmp_path, latencies_ms=[100], modes=["sync", "async"],
                           max_seconds=1.5, width=64, height=64, engine=ReachEngine(), progress=False)
    sync, asynchronous = result["cells"]
    assert (sync["mode"], asynchronous["mode"]) == ("sync", "async")
    for cell in (sync, asynchronous):
        assert cell["latency_ms"] == 100.0 and cell["episodes"] == 1 and cell["successes"] == 0
        assert cell["success_rate_ci95"] == pytest.approx(list(wilson_interval(0, 1)), abs=1e-4)
        assert 0 < cell["max_joint_step"] <= 0.5 * 2.62 / 15 + 1e-9  # the arm moved, within the safety step
        assert (tmp_path / cell["folder"] / "metrics.json").is_file()
        assert load_spec(tmp_path / cell["folder"] / "robot.yaml").execution.inference_latency_ms == 100.0
    # sync at 100 ms blocks every other 15 Hz tick; async commands every tick once a chunk is in hand
    assert sync["commands_per_s"] == pytest.approx(7.5, abs=1.0)
    assert asynchronous["commands_per_s"] > 12 and asynchronous["held_tick_fraction"] > 0  # waits for chunk 1
    assert json.loads((tmp_path / "results.json").read_text())["cells"] == result["cells"]
    table = (tmp_path / "results.md").read_text()
    assert "| sync | 100 | 0/1 = 0 % |" in table and "| async | 100 | 0/1 = 0 % |" in table
