"""Replay evaluation: run a policy on recorded bags exactly as it runs live, and score it against the recording.

Offline (no ROS 2 needed)::

    hpt-ros eval --bags demos/episode_0000 demos/episode_0001 --robot config/robots/franka_fr3.yaml \\
        --model models/franka_fr3_feed_dog --out eval/
    ros2 run hpt_ros replay_eval --bags ... --robot ... --model ... --out ...     # same arguments

or ``evaluate_bags(bags, spec, model, out_dir)`` from Python. Each bag is replayed through
the SAME :class:`~hpt_ros.nodes.policy_node.PolicyNode` that runs on the robot, on a
:class:`~hpt_ros.ros.replay.ReplayTransport` (simulated clock = bag time, single-threaded,
deterministic), so control ticks, sensor ages and ``max_age`` holds, chunk execution
(temporal ensembling / re-planning) and the safety filter behave as live. The commands the
node publishes are read back into action vectors by the same message functions that read
the recorded ones, and compared:

* **Alignment.** The recorded action at a tick is the latest recorded command at or before
  the tick time (bag receive timestamps), per stream: the spec's command topic and its
  gripper topic, or a leader-arm ``JointState`` topic (``--action-topic``,
  ``--action-joints``). Ticks fall at ``start + k / rate_hz`` of each bag; a tick sees the
  sensor messages stamped at or before it.
* **Enable.** The node starts enabled. When a bag has the spec's enable topic, its
  recorded values gate motion from their timestamps on (``disabled`` ticks are held).
* **Held ticks** (stale/missing sensors, disabled, inference failure) are counted per
  reason, not scored: live, nothing was sent either.
* **Output** in ``--out``: ``metrics.json`` (per episode and overall: MAE, RMSE and max
  error per action dimension, in the action's units and in the spec's joint-limit
  normalised units ``2 (x - lower) / (upper - lower) - 1``; ticks evaluated; ticks held
  by reason; replay speed as a multiple of real time, and where the time went),
  ``report.md`` (read it first) and ``plots/`` (policy vs recorded per joint per
  episode; the error distribution).
* **Part of the action.** A bag without the command or the gripper topic (absent or
  empty) is scored on the dimensions it records; ``dimensions_scored`` and
  ``dimensions_not_scored`` (with the reason) in metrics.json and the report say which.
  A bag with neither is an error.
* **Errors.** A bag with a missing sensor topic, a type other than the spec's, a truncated file
  (``--recover`` reads its complete messages) or messages that do not convert gets
  ``status: "error"`` in metrics.json with a message naming the bag and the topic; the
  other bags are evaluated. Exit status 1 if any bag failed, 2 if none could be
  evaluated (bad spec, model or arguments), else 0.
* **Determinism.** One thread runs every callback in time order; torch is seeded and its
  thread count can be fixed (``--threads``): the same bags and model give the same numbers.
* **Speed.** Inference dominates; ``--precision bf16`` (checked against fp32 when the
  engine is built) or ``--engine onnxruntime`` make the replay faster. Inference costs
  wall time, not simulated time, so the replay shows the policy on a computer fast
  enough for its control rate.

Online, against a ROS 2 graph: play the bag's sensor topics with its clock and run the
policy node on simulated time (play only the sensors: the bag's recorded commands would
otherwise reach the same command topic as the policy's)::

    ros2 bag play demos/episode_0000 --clock 200 --topics /wrist_camera/color/image_raw \
        /third_person_camera/color/image_raw /joint_states
    ros2 run hpt_ros policy_node --ros-args -p use_sim_time:=true \
        -p robot_config:=franka_fr3 -p model:=/path/to/checkpoint -p auto_enable:=true

``--clock 200`` publishes ``/clock`` at 200 Hz (a bare ``--clock`` is 40 Hz, which would
quantise the 15 Hz control ticks to 25 ms). The node then stamps and ticks on bag time;
``ros2 bag record`` its command topics to look at them. Unlike the offline replay, live
inference latency and DDS delivery do cost time there, and the result is not repeatable.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "ALIGNMENT",
    "METRICS_FILE",
    "REPORT_FILE",
    "ActionLayout",
    "EpisodeResult",
    "EvaluationError",
    "error_metrics",
    "evaluate_bags",
    "replay_episode",
]

_LAZY = {
    "ALIGNMENT": "api",
    "METRICS_FILE": "api",
    "REPORT_FILE": "api",
    "evaluate_bags": "api",
    "ActionLayout": "actions",
    "EpisodeResult": "episode",
    "replay_episode": "episode",
    "EvaluationError": "errors",
    "error_metrics": "metrics",
}


def __getattr__(name: str) -> Any:
    import importlib

    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
