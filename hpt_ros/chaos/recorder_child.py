"""The process a recorder chaos run kills: fake robot, policy node and teleop recorder on one
replay world, paced to the wall clock (so the recorder's flushes, every 0.5 s of wall time,
mean what they mean live).

    python -m hpt_ros.chaos.recorder_child OUTPUT_DIR PROGRESS_FILE SEED DURATION_S

Writes the simulated time it has reached, and when the episode began, into PROGRESS_FILE
every 50 ms (what the parent compares the recovered bag with after a SIGKILL) and, at the end, one JSON line on stdout:
the recorder's exit code, state and last event.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

import numpy as np

_START = 1000.0
_PACE_PERIOD_S = 0.05


def main(argv: list[str]) -> int:
    from hpt_ros.nodes.fake_robot import FakeRobot
    from hpt_ros.nodes.policy_node import PolicyNode
    from hpt_ros.nodes.teleop_recorder import TeleopRecorder
    from hpt_ros.ros.replay import ReplayTransport
    from hpt_ros.spec import load_spec

    from .stand_ins import AdversarialEngine

    output, progress, seed, duration = argv[0], argv[1], int(argv[2]), float(argv[3])
    logging.basicConfig(level=logging.ERROR, format="[%(levelname)s] [%(name)s]: %(message)s")
    spec = load_spec("franka_fr3")
    world = ReplayTransport("fake_robot", {"width": 64, "height": 64, "seed": seed}, start_time=_START, record=False)
    FakeRobot(world, spec)
    node = PolicyNode(world.sibling("policy_node", {"auto_enable": True}), spec,
                      AdversarialEngine(spec, np.random.default_rng(seed)))
    recorder = TeleopRecorder(world.sibling("teleop_recorder", {
        "output_dir": output, "keyboard": False, "min_free_gb": 0.0005, "fsync": False, "status_period_s": 0.0,
        "episodes": 1, "episode_duration_s": duration, "wait_for_topics_s": 1.0, "reset_settle_s": 0.0}), spec)
    wall0 = time.monotonic()

    def pace() -> None:  # simulated time never runs ahead of the wall clock
        ahead = (world.now() - _START) - (time.monotonic() - wall0)
        if ahead > 0:
            time.sleep(ahead)
        tmp = progress + ".tmp"
        with open(tmp, "w") as handle:
            episode = recorder.episode
            handle.write(f"{world.now():.6f} {episode.start_time if episode is not None else float('nan'):.6f}")
        os.replace(tmp, progress)

    world.create_timer(_PACE_PERIOD_S, pace, group="chaos")
    try:
        world.run(until=_START + duration + 5.0, stop=lambda: recorder.finished)
    except Exception as exc:  # noqa: BLE001 - the recorder's own verdict follows
        logging.getLogger("hpt_ros.chaos").error("run stopped: %s", exc)
    code = recorder.close()
    node.close()
    print(json.dumps({"code": code, "state": recorder.state, "event": recorder.last_event, "now": world.now()}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(sys.argv[1:]))
