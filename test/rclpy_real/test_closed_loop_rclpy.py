"""The closed loop of ``closed_loop.py`` with the fake robot, its cameras and the policy node all
on real rclpy, started as ``ros2 run`` starts them (the ``fake_robot`` and ``policy_node``
console scripts with ``--ros-args``), with 96x96 cameras: enable -> commands; camera process
killed -> hold for stale cameras; restarted -> resume; disable -> no command; no command
beyond the joint limits or the step limit. The loops with one stack on each side are in
``test_cross_stack.py``."""

from __future__ import annotations

from closed_loop import run_closed_loop


def test_closed_loop_on_rclpy(tmp_path, franka_spec, tiny_model) -> None:
    run_closed_loop(tmp_path, franka_spec, tiny_model, robot_stack="rclpy", policy_stack="rclpy",
                    watcher_stack="rclpy", width=96, height=96)
