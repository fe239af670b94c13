"""Wire interop: the package's ``dds`` transport (Cyclone DDS) <-> real rclpy nodes on Fast DDS.

For each ROS 2 wheel set (Jazzy: rclpy 7.1 on Fast DDS 2.14; Kilted: rclpy 9.1 on Fast
DDS 3.2) one rclpy peer process (``ros2_peer.py``) and one ``DdsTransport`` exchange every
message type the package publishes or subscribes, in both directions, on loopback with
the package's DDS profiles. A message passes when the receiving side decodes exactly the
message that was sent. While the participants run, no multicast group is joined on any
interface but lo.
"""

from __future__ import annotations

import functools
import json
import os
import subprocess
import threading
import time
from typing import Any

import numpy as np
import pytest

from conftest import require_module
from igmp import non_loopback_groups
from ros_venvs import DISTRIBUTIONS, ROOT, ros_python

require_module("cyclonedds")  # a hard dependency: a failure under CI=true, not a skip

from hpt_ros.msgs.idl import cdr  # noqa: E402
from hpt_ros.msgs.idl.examples import example_messages  # noqa: E402
from hpt_ros.msgs.idl.registry import MESSAGE_TYPES  # noqa: E402
from hpt_ros.ros.dds import DdsTransport  # noqa: E402
from hpt_ros.ros.dds_config import ensure_dds_config  # noqa: E402
from hpt_ros.ros.transport import QOS_DEFAULT, QOS_SENSOR_DATA  # noqa: E402

#: topic-level types the package's nodes publish or subscribe (nested types travel inside them)
TOPIC_TYPES = ["std_msgs/msg/Bool", "std_msgs/msg/Float64", "std_msgs/msg/String", "std_msgs/msg/Float64MultiArray",
               "sensor_msgs/msg/JointState", "sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage",
               "geometry_msgs/msg/PoseStamped", "geometry_msgs/msg/TwistStamped", "trajectory_msgs/msg/JointTrajectory",
               "diagnostic_msgs/msg/DiagnosticArray", "rosgraph_msgs/msg/Clock"]
DIRECTIONS = ("dds_to_rclpy", "rclpy_to_dds")
EXCHANGE_S = 20.0


def samples() -> dict[str, tuple[str, Any, bool]]:
    """name -> (type, message, sensor-data QoS)."""
    examples = example_messages()
    out = {t.rsplit("/", 1)[1]: (t, examples[t], t.startswith("sensor_msgs/msg/") and "Image" in t)
           for t in TOPIC_TYPES}
    frame = np.random.default_rng(3).integers(0, 256, (480, 640, 3), dtype=np.uint8)
    big = MESSAGE_TYPES["sensor_msgs/msg/Image"](height=480, width=640, encoding="rgb8", step=640 * 3, data=frame.reshape(-1))
    big.header.frame_id = "wrist_camera"
    out["Image640x480"] = ("sensor_msgs/msg/Image", big, True)
    return out


SAMPLES = samples()


@functools.lru_cache(maxsize=None)
def exchange(distribution: str) -> dict[str, Any]:
    """Run the exchange with the ``distribution`` peer once; what each side received."""
    python = ros_python(distribution)
    ensure_dds_config()  # the peer gets the package's loopback profiles through this environment
    domain = 170 + (os.getpid() + DISTRIBUTIONS.index(distribution)) % 30
    env = dict(os.environ, ROS_DOMAIN_ID=str(domain), PYTHONUNBUFFERED="1")
    before = non_loopback_groups()
    peer = subprocess.Popen([str(python), str(ROOT / "test" / "ros2_peer.py")], cwd=ROOT, env=env, text=True,
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    to_rclpy: dict[str, bytes] = {}
    from_rclpy: dict[str, Any] = {}
    stderr: list[str] = []
    threading.Thread(target=lambda: stderr.extend(peer.stderr), daemon=True).start()

    def read_peer() -> None:
        for line in peer.stdout:
            if line.startswith("RECV "):
                _, name, data = line.split()
                to_rclpy[name] = bytes.fromhex(data)

    plan = [{"name": name, "type": t, "cdr": cdr.serialize(msg, MESSAGE_TYPES[t]).hex(), "sensor_data": sensor}
            for name, (t, msg, sensor) in SAMPLES.items()]
    peer.stdin.write(json.dumps({"samples": plan}) + "\n")
    peer.stdin.flush()
    threading.Thread(target=read_peer, daemon=True).start()
    transport = DdsTransport("interop_dds", domain_id=domain)
    during: set[tuple[str, str]] = set()
    try:
        publishers = []
        for name, (t, msg, sensor) in SAMPLES.items():
            qos = QOS_SENSOR_DATA if sensor else QOS_DEFAULT
            transport.create_subscription(f"/interop/from_ros/{name}", t,
                                          functools.partial(from_rclpy.setdefault, name), qos)
            publishers.append((transport.create_publisher(f"/interop/to_ros/{name}", t, qos), msg))
        transport.create_timer(0.05, lambda: [pub.publish(msg) for pub, msg in publishers])
        deadline = time.monotonic() + EXCHANGE_S
        transport.spin(duration_s=2.0)
        during = non_loopback_groups()  # discovery done, traffic flowing
        transport.spin(until=lambda: (len(to_rclpy) == len(from_rclpy) == len(SAMPLES)
                                      or time.monotonic() > deadline or peer.poll() is not None))
        during |= non_loopback_groups()
    finally:
        transport.shutdown()
        try:
            peer.stdin.close()
            peer.wait(timeout=20)
        except subprocess.TimeoutExpired:
            peer.kill()
            peer.wait()
    return {"to_rclpy": to_rclpy, "from_rclpy": from_rclpy, "new_groups": during - before, "rc": peer.returncode,
            "stderr": "".join(stderr)[-3000:]}


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("name", list(SAMPLES))
@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_message_crosses(distribution: str, name: str, direction: str) -> None:
    result = exchange(distribution)
    msg_type, expected, _ = SAMPLES[name]
    if direction == "dds_to_rclpy":
        data = result["to_rclpy"].get(name)
        assert data is not None, f"{distribution} rclpy received no {msg_type} from the dds transport; " \
                                 f"peer stderr:\n{result['stderr']}"
        got = cdr.deserialize(data, MESSAGE_TYPES[msg_type])
    else:
        got = result["from_rclpy"].get(name)
        assert got is not None, f"the dds transport received no {msg_type} from {distribution} rclpy; " \
                                f"peer stderr:\n{result['stderr']}"
    assert got == expected, f"{msg_type} changed on the way ({direction}, {distribution}): {got!r}"


@pytest.mark.parametrize("distribution", DISTRIBUTIONS)
def test_participants_join_no_multicast_group_off_loopback(distribution: str) -> None:
    result = exchange(distribution)
    assert result["rc"] == 0, f"the {distribution} peer failed:\n{result['stderr']}"
    assert not result["new_groups"], f"multicast joined off loopback while the participants ran: " \
                                     f"{sorted(result['new_groups'])}"
