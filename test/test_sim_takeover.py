"""DAgger-style data: a policy drives, the expert takes over, only the expert's part is recorded."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import require_module

require_module("mujoco")

from hpt_ros.sim.kinematics import READY_POSE  # noqa: E402
from hpt_ros.spec import load_spec  # noqa: E402

SPEC = load_spec("franka_fr3")


def test_the_expert_takes_over_where_the_policy_left_the_arm(tmp_path) -> None:
    from hpt_ros.data.bag_reader import BagReader
    from hpt_ros.engine.factory import build_policy_for_spec, load_engine
    from hpt_ros.model import save_checkpoint
    from hpt_ros.msgs import messages
    from hpt_ros.train.baselines import constant_action_policy
    from hpt_ros.train.sim_demos import record_takeover_episodes

    # a "policy" that swings joint 1 away from the ready pose: its mistake for the expert to undo
    pushed = np.array([*READY_POSE, 0.04])
    pushed[0] += 0.25
    model = tmp_path / "push"
    save_checkpoint(model, constant_action_policy(build_policy_for_spec(SPEC, "tiny", random_vision=True), pushed),
                    {"robot": SPEC.name})
    engine = load_engine(str(model), SPEC, threads=1)
    saved = record_takeover_episodes(tmp_path / "episodes", SPEC, engine, 1, takeover_s=2.0, seed=3,
                                     duration_s=2.0, width=64, height=64)
    assert len(saved) == 1
    joints = list(SPEC.action.arm_joints)
    states, commands = [], []
    with BagReader(next(saved[0].glob("*.mcap"))) as bag:
        for topic, _, _, msg in bag.decoded_messages([SPEC.state_sensors[0].topic, SPEC.action.command.topic]):
            if topic == SPEC.action.command.topic:
                commands.append(np.asarray(msg.points[-1].positions, dtype=np.float64))
            else:
                states.append(messages.joint_state_to_array(msg, joints, topic=topic))
    assert states and commands
    # the recording starts where the policy took the arm (2 s at the safety filter's speed), not at the reset pose
    assert states[0][0] - READY_POSE[0] > 0.2
    # and holds the expert's commands only: from that pose back toward the treat, never the policy's constant
    assert not any(np.allclose(c, pushed[:7], atol=1e-3) for c in commands)
    assert np.abs(commands[0] - states[0]).max() < 0.1
    assert commands[-1][0] < states[0][0] - 0.05  # the expert has undone the swing
    with pytest.raises(ValueError, match="takeover_s must be > 0"):
        record_takeover_episodes(tmp_path / "none", SPEC, engine, 1, takeover_s=0.0)
