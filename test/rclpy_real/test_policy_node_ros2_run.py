"""``policy_node`` started as ``ros2 run`` starts it: the console script with
``--ros-args --params-file`` and ``-p``, parameters with descriptions on the parameter
services, commands from rclpy sensors, and a clean exit on SIGTERM."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

from rcl_interfaces.srv import DescribeParameters, GetParameters

from conftest import ROOT
from rclpy_real.policy_client import PolicyClient, wait_until


def test_console_script_params_file_and_sigterm(tmp_path, franka_spec, tiny_model) -> None:
    params = tmp_path / "policy.yaml"
    params.write_text(f"policy_node:\n  ros__parameters:\n    model: {tiny_model}\n    rate_hz: 10.0\n")
    log_path = tmp_path / "node.log"
    with open(log_path, "w") as log:
        node = subprocess.Popen(
            [os.path.join(os.path.dirname(sys.executable), "policy_node"), "--ros-args", "--params-file", str(params),
             "-p", "auto_enable:=true"],
            cwd=ROOT, env=dict(os.environ, PYTHONUNBUFFERED="1"), stdout=log, stderr=subprocess.STDOUT)
    client = PolicyClient(franka_spec)
    try:
        get = client.node.create_client(GetParameters, "/policy_node/get_parameters")
        describe = client.node.create_client(DescribeParameters, "/policy_node/describe_parameters")
        names = ["rate_hz", "model", "auto_enable"]
        values = client.call_until_answered(get, GetParameters.Request(names=names)).values
        assert (values[0].double_value, values[1].string_value, values[2].bool_value) == (10.0, str(tiny_model), True)
        descriptors = client.call_until_answered(describe, DescribeParameters.Request(names=names)).descriptors
        assert all(d.description for d in descriptors), descriptors
        t0 = time.monotonic()
        wait_until(lambda: len(client.commands_since(t0)) >= 5, 120, "commands from policy_node")
        node.send_signal(signal.SIGTERM)
        rc = node.wait(timeout=30)
    finally:
        if node.poll() is None:
            node.kill()
            node.wait()
        client.close()
    text = log_path.read_text()
    assert rc == 0, f"policy_node exited with {rc} on SIGTERM:\n{text[-3000:]}"
    assert "Traceback" not in text, text[-3000:]
