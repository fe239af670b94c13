"""Scripted demonstrations recorded by the real nodes in simulated time (no DDS, no waiting).

``record_sim_episodes(out_dir, spec, count)`` runs, on sibling ``ReplayTransport``s
(in-process pub/sub on one simulated clock, ``hpt_ros.ros.replay``), exactly the graph
``hpt-ros record --episodes N --reset-robot`` records live:

* ``FakeRobot`` (the MuJoCo Franka: joint states at ``joint_state_rate_hz``, the wrist and
  third-person cameras at ``camera_rate_hz``, the treat drawn for ``(seed, episode)``);
* ``ScriptedTeleopNode`` (the feed-dog expert with recovery noise: picks the treat and
  drops it into the bowl, publishing the spec's command and gripper topics while the
  recorder records);
* ``TeleopRecorder`` in auto mode: before each episode it publishes
  ``/fake_robot/reset [index]`` (the bowl moves: scene ``(seed, index)``), waits, then
  records ``duration_s`` into ``out_dir/episode_NNNN`` (rosbag2/mcap + episode.yaml), the
  bag timestamps being receive times on the (simulated) clock.

``record_takeover_episodes(out_dir, spec, engine, count, takeover_s=...)`` adds a policy
(DAgger-style data): after each reset the ``PolicyNode`` drives for ``takeover_s``
(the recorder's settle time), then motion is disabled for it, the expert takes over from
the state the policy left (``FeedDogExpert`` picks its phase from it) and only the
expert's correction and completion are recorded. A policy trained on these sees its own
mistakes paired with the way out of them.

Rendering dominates the cost: about 8 s of wall time per 10 s episode at 224x224 and
15 Hz on one core. Scene episode numbers are the
episode indices in ``out_dir`` (the recorder's ``next_episode_index``), so use another
``seed`` for a held-out set recorded into another folder.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hpt_ros.spec import RobotSpec

__all__ = ["record_sim_episodes", "record_takeover_episodes"]


def record_sim_episodes(
    out_dir: str | Path,
    spec: RobotSpec,
    count: int,
    *,
    seed: int = 0,
    duration_s: float = 10.0,
    width: int = 224,
    height: int = 224,
    camera_rate_hz: float = 15.0,
    joint_state_rate_hz: float = 100.0,
    noise: float = 0.01,
    perturbation: float = 0.03,
    approach_error: float = 0.0,
    missed_grasp: float = 0.0,
    task: str = "feed_dog",
    start_time: float = 1.7e9,
    quiet: bool = True,
    reset_settle_s: float = 1.0,
    policy_engine: Any = None,
) -> list[Path]:
    """Record ``count`` episodes into ``out_dir``; returns the saved episode folders.

    ``policy_engine``: a policy that drives during each reset's ``reset_settle_s`` and is
    switched off when recording starts (see :func:`record_takeover_episodes`).

    Raises ``RuntimeError`` when the recorder ends with an error.
    """
    from hpt_ros.nodes.fake_robot import FakeRobot
    from hpt_ros.nodes.scripted_teleop import ScriptedTeleopNode
    from hpt_ros.nodes.teleop_recorder import TeleopRecorder
    from hpt_ros.ros.replay import ReplayTransport

    out_dir = Path(out_dir)
    notes = f"simulated time, scene seed {seed}"
    if policy_engine is not None:
        notes += f"; the expert took over from a policy after {reset_settle_s:g} s"
    names = ("fake_robot", "scripted_teleop", "teleop_recorder") + (("policy_node", "runtime", "safety")
                                                                    if policy_engine is not None else ())
    loggers = [logging.getLogger(f"hpt_ros.{n}") for n in names]
    levels = [lg.level for lg in loggers]
    if quiet:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
    try:
        common: dict[str, Any] = {"seed": seed, "task": task}
        world = ReplayTransport("fake_robot", {**common, "width": width, "height": height,
                                               "camera_rate_hz": camera_rate_hz,
                                               "joint_state_rate_hz": joint_state_rate_hz},
                                start_time=start_time, record=False)
        FakeRobot(world, spec)
        ScriptedTeleopNode(world.sibling("scripted_teleop", {**common, "noise": noise, "perturbation": perturbation,
                                                                "approach_error": approach_error,
                                                                "missed_grasp": missed_grasp}), spec)
        recorder = TeleopRecorder(world.sibling("teleop_recorder", {
            "output_dir": str(out_dir), "episodes": int(count), "episode_duration_s": float(duration_s),
            "reset_robot": True, "reset_settle_s": float(reset_settle_s), "keyboard": False, "fsync": False,
            "min_free_gb": 0.01, "status_period_s": 0, "task": task, "operator": "scripted_teleop",
            "notes": notes}), spec)
        if policy_engine is not None:
            _hand_over_while_recording(world, spec, policy_engine, recorder)
        world.run(stop=lambda: recorder.finished)
    finally:
        for lg, level in zip(loggers, levels):
            lg.setLevel(level)
    if recorder.exit_code != 0:
        raise RuntimeError(f"the teleop recorder failed: {recorder.last_event}")
    return list(recorder.saved)


def record_takeover_episodes(
    out_dir: str | Path,
    spec: RobotSpec,
    engine: Any,
    count: int,
    *,
    takeover_s: float,
    seed: int = 1,
    duration_s: float = 10.0,
    **kwargs: Any,
) -> list[Path]:
    """Record ``count`` episodes in which ``engine`` (a policy) drives for ``takeover_s`` after each
    reset and the expert then takes over; only the expert's part is recorded (``duration_s``).
    Other keyword arguments as for :func:`record_sim_episodes`."""
    if not takeover_s > 0:
        raise ValueError(f"takeover_s must be > 0 (the policy's time before the expert takes over), got {takeover_s}")
    return record_sim_episodes(out_dir, spec, count, seed=seed, duration_s=duration_s, reset_settle_s=takeover_s,
                               policy_engine=engine, **kwargs)


def _hand_over_while_recording(world: Any, spec: RobotSpec, engine: Any, recorder: Any) -> None:
    """A policy node that drives from each reset while the recorder settles and is disabled,
    its engine taken away, while the recorder records (the scripted teleoperator moves only
    then: it follows the recorder's status): no policy command and no inference overlaps the
    expert's part."""
    from hpt_ros.nodes.policy_node import PolicyNode

    policy = PolicyNode(world.sibling("policy_node", {"auto_enable": False}), spec, engine=engine)
    runtime = policy.runtime
    switch = world.sibling("takeover")
    last = [None]

    def on_tick() -> None:
        state = recorder.state
        if state == last[0]:
            return
        if state == "resetting":  # a new scene: the last one's chunks forgotten, drive
            runtime.engine = engine
            runtime.reset()
            runtime.set_enabled(True, switch.now())
        elif state == "recording":
            runtime.set_enabled(False, switch.now())
            runtime.engine = None
        last[0] = state

    switch.create_timer(0.01, on_tick, group="takeover")
