"""The managed policy node under real rclpy, driven by a real lifecycle client.

The node runs as its own process (``--ros-args -p``, as ``ros2 run`` starts it); the test
process is an rclpy node that feeds joint states and two cameras, watches the commands,
and calls the node's ``change_state`` / ``get_state`` services.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import numpy as np
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState

from conftest import ROOT
from rclpy_real.policy_client import Q_START, PolicyClient, wait_until


def test_lifecycle_transitions_from_a_real_client(tmp_path, franka_spec, tiny_model) -> None:
    log_path = tmp_path / "node.log"
    with open(log_path, "w") as log:
        node = subprocess.Popen(
            # the console script, as ros2 run starts it
            [os.path.join(os.path.dirname(sys.executable), "policy_lifecycle_node"), "--ros-args", "-p",
             f"model:={tiny_model}",
             "-p", "rate_hz:=10.0", "-p", "auto_enable:=true"],
            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=log, stderr=subprocess.STDOUT)
    client = PolicyClient(franka_spec)
    try:
        assert client.call_until_answered(client.get, GetState.Request()).current_state.label == "unconfigured"
        # -- an invalid transition is refused, and the node stays up --------------------------
        activate = ChangeState.Request(transition=Transition(id=Transition.TRANSITION_ACTIVATE))
        assert client.call_until_answered(client.change, activate).success is False
        assert client.state() == "unconfigured" and node.poll() is None

        # -- configure: spec, model, warm-up; inactive = no command -----------------------------
        assert client.transition(Transition.TRANSITION_CONFIGURE) is True
        assert client.state() == "inactive"
        t_inactive = time.monotonic()
        time.sleep(1.0)
        assert client.commands_since(t_inactive) == [], "commands while inactive"

        # -- activate: commands, the first one from the measured state ------------------------
        t_active = time.monotonic()
        assert client.transition(Transition.TRANSITION_ACTIVATE) is True
        assert client.state() == "active"
        wait_until(lambda: len(client.commands_since(t_active)) >= 5, 30, "commands after activate")
        arm = franka_spec.action.arm_joints
        _, _, velocity = franka_spec.joint_limits_arrays(arm)
        max_step = franka_spec.safety.max_velocity_fraction * velocity / 10.0
        first = client.commands_since(t_active)[0]
        assert np.all(np.abs(first - np.array(Q_START[:7])) <= max_step + 1e-6), (first, Q_START)

        # -- deactivate: hold ----------------------------------------------------------------
        assert client.transition(Transition.TRANSITION_DEACTIVATE) is True
        time.sleep(0.5)
        t_held = time.monotonic()
        time.sleep(1.0)
        assert client.commands_since(t_held) == [], "commands while deactivated"

        # -- re-activate: from the measured state again ------------------------------------------
        t_again = time.monotonic()
        assert client.transition(Transition.TRANSITION_ACTIVATE) is True
        wait_until(lambda: len(client.commands_since(t_again)) >= 2, 30, "commands after re-activate")
        again = client.commands_since(t_again)[0]
        assert np.all(np.abs(again - np.array(Q_START[:7])) <= max_step + 1e-6), (again, Q_START)
        assert client.transition(Transition.TRANSITION_DEACTIVATE) is True

        # -- cleanup releases the subscriptions; a second cleanup is refused ----------------------
        assert client.transition(Transition.TRANSITION_CLEANUP) is True
        assert client.state() == "unconfigured"
        wait_until(lambda: client.joints.get_subscription_count() == 0, 10, "the joint-state subscription to go")
        assert client.transition(Transition.TRANSITION_CLEANUP) is False
        assert node.poll() is None

        # -- configure again, then shut down from inactive -----------------------------------
        assert client.transition(Transition.TRANSITION_CONFIGURE) is True
        assert client.transition(Transition.TRANSITION_INACTIVE_SHUTDOWN) is True
        assert client.state() == "finalized"
    finally:
        if node.poll() is None:
            node.send_signal(signal.SIGINT)
        try:
            rc = node.wait(timeout=20)
        except subprocess.TimeoutExpired:
            node.kill()
            rc = node.wait()
        client.close()
    text = log_path.read_text()
    assert "transition 3 is not available in state 'unconfigured'" in text, text[-3000:]
    assert rc == 0, f"the node exited with {rc}:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]
