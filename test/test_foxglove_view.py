"""The live Foxglove view, checked from the outside: a real WebSocket client against the server.

The graph is the policy node on the replay transport (in process, simulated clock, no DDS):
a sibling publishes cameras and joint states, the real PolicyNode (scripted engine) publishes
commands, predicted chunks and diagnostics, and the view is attached to a third sibling. The
client negotiates the Foxglove subprotocol, reads the advertised channels, subscribes, and
decodes what arrives with ``rosbags`` (not the package's own CDR codec).
"""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import require_module

require_module("foxglove")
require_module("websockets")

from websockets.sync.client import connect  # noqa: E402

from hpt_ros.data.typestores import distro_typestore  # noqa: E402
from hpt_ros.spec import load_spec  # noqa: E402
from hpt_ros.view import SAFETY_STATE_TOPIC, layout_path, view_topics  # noqa: E402
from hpt_ros.view.bridge import FoxgloveView  # noqa: E402

from test_policy_node import ChunkEngine, ee_spec, make_world  # noqa: E402

# foxglove-sdk 0.30 names the Foxglove WebSocket protocol foxglove.sdk.v1; older servers foxglove.websocket.v1
SUBPROTOCOLS = ["foxglove.sdk.v1", "foxglove.websocket.v1"]
WAIT_S = 20.0
_MESSAGE_DATA = 0x01


def connect_client(view: FoxgloveView):
    ws = connect(view.url, subprotocols=SUBPROTOCOLS, proxy=None, open_timeout=WAIT_S, max_size=None)
    assert ws.subprotocol in SUBPROTOCOLS, f"server negotiated {ws.subprotocol!r}, none of {SUBPROTOCOLS}"
    return ws


def read_advertised(ws) -> dict[str, dict]:
    """Channels by topic, from the server's first text messages (serverInfo, advertise)."""
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        op = json.loads(ws.recv(timeout=WAIT_S))
        if op["op"] == "advertise":
            return {c["topic"]: c for c in op["channels"]}
    raise AssertionError(f"no 'advertise' message from the server within {WAIT_S} s")


def subscribe(ws, view: FoxgloveView, channels: dict[str, dict], topics: list[str]) -> dict[int, str]:
    """Subscribe to ``topics``; returns subscription id -> topic once the server has taken them all."""
    ids = {i + 1: topic for i, topic in enumerate(topics)}
    ws.send(json.dumps({"op": "subscribe",
                        "subscriptions": [{"id": i, "channelId": channels[t]["id"]} for i, t in ids.items()]}))
    deadline = time.monotonic() + WAIT_S
    while not all(view.has_subscribers(t) for t in topics):
        if time.monotonic() > deadline:
            raise AssertionError(f"the server did not register the subscriptions to "
                                 f"{[t for t in topics if not view.has_subscribers(t)]} within {WAIT_S} s")
        time.sleep(0.01)
    return ids


def receive(ws, ids: dict[int, str], wanted: set[str]) -> dict[str, list[tuple[int, bytes]]]:
    """Binary messageData frames by topic, (log time ns, payload), until each of ``wanted`` has one."""
    got: dict[str, list[tuple[int, bytes]]] = {}
    deadline = time.monotonic() + WAIT_S
    while not wanted <= set(got):
        if time.monotonic() > deadline:
            raise AssertionError(f"no message on {sorted(wanted - set(got))} within {WAIT_S} s; got {sorted(got)}")
        try:
            frame = ws.recv(timeout=0.5)
        except TimeoutError:
            continue
        if isinstance(frame, str):
            continue  # status or other text messages
        assert frame[0] == _MESSAGE_DATA, f"unexpected binary opcode {frame[0]}"
        sub_id, log_time = struct.unpack_from("<IQ", frame, 1)
        assert sub_id in ids, f"message for subscription {sub_id}, which the client never made"
        got.setdefault(ids[sub_id], []).append((log_time, bytes(frame[13:])))
    return got


@pytest.fixture
def franka_view():
    view = FoxgloveView(load_spec("franka_fr3"), port=0)
    yield view
    view.close()


def test_every_view_topic_is_advertised_as_ros2_cdr(franka_view):
    spec = load_spec("franka_fr3")
    with connect_client(franka_view) as ws:
        channels = read_advertised(ws)
    expected = {t.topic: t.type for t in view_topics(spec)}
    assert set(channels) == set(expected) | {SAFETY_STATE_TOPIC}
    must_see = {s.topic for s in spec.sensors} | {spec.action.command.topic, spec.action.gripper.topic,
                                                 "/diagnostics", "/hpt/predicted_chunk", spec.safety.enable_topic}
    assert must_see <= set(channels)
    for topic, msg_type in expected.items():
        c = channels[topic]
        assert (c["encoding"], c["schemaName"], c["schemaEncoding"]) == ("cdr", msg_type, "ros2msg"), c
        assert c["schema"].split("\n", 1)[0].strip(), f"{topic}: empty message definition"
    assert "uint8[] data" in channels["/wrist_camera/color/image_raw"]["schema"]
    assert "MSG: std_msgs/MultiArrayDimension" in channels["/hpt/predicted_chunk"]["schema"]
    safety = channels[SAFETY_STATE_TOPIC]
    assert (safety["encoding"], safety["schemaEncoding"]) == ("json", "jsonschema")
    assert "state" in json.loads(safety["schema"])["properties"]


def test_messages_of_the_graph_reach_the_client(tmp_path):
    spec = ee_spec("ee_pose")
    engine = ChunkEngine([0.4, 0.0, 0.3, 0.0, 0.0, 0.0])
    world, _sensors, _node = make_world(spec, engine)
    with FoxgloveView(spec, port=0) as view:
        view.attach(world.sibling("foxglove_view"))
        with connect_client(view) as ws:
            channels = read_advertised(ws)
            topics = ["/cam0", "/joint_states", "/ee_cmd", "/hpt/predicted_chunk", "/diagnostics", SAFETY_STATE_TOPIC]
            ids = subscribe(ws, view, channels, topics)
            world.run(until=1.5)  # sensors every 0.125 s, control at 8 Hz, diagnostics at 1 s
            got = receive(ws, ids, set(topics))
    store = distro_typestore("humble")

    def decode(topic: str, msg_type: str, k: int = -1):
        return store.deserialize_cdr(got[topic][k][1], msg_type)

    assert "/cam1" not in got  # never subscribed: never sent
    joint_state = decode("/joint_states", "sensor_msgs/msg/JointState")
    assert list(joint_state.name) == ["a", "b"] and np.allclose(joint_state.position, [0.1, 0.2])
    # log times are the graph's simulated clock: joint states every 0.125 s from 0
    assert all(t % 125_000_000 == 0 and 0 < t <= 1_500_000_000 for t, _ in got["/joint_states"])
    image = decode("/cam0", "sensor_msgs/msg/Image")
    assert (image.height, image.width, image.encoding, len(image.data)) == (4, 6, "rgb8", 4 * 6 * 3)
    chunk = decode("/hpt/predicted_chunk", "std_msgs/msg/Float64MultiArray")
    assert [(d.label, d.size) for d in chunk.layout.dim][0] == ("horizon", 3)
    assert np.allclose(np.asarray(chunk.data).reshape(3, 6), engine.action[None].repeat(3, 0), atol=1e-6)
    pose = decode("/ee_cmd", "geometry_msgs/msg/PoseStamped")
    assert pose.header.frame_id == "base"
    diagnostics = decode("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray")
    assert any(s.name.endswith(": policy") for s in diagnostics.status)
    safety = json.loads(got[SAFETY_STATE_TOPIC][-1][1])
    assert safety["state"] == "commanding" and safety["level"] == 0
    assert safety["values"]["commands"] >= 1 and safety["node"].endswith(": policy")


def _listening_addresses(port: int) -> list[str]:
    """Local addresses of the TCP sockets listening on ``port`` (Linux /proc/net/tcp{,6})."""
    found = []
    for name in ("tcp", "tcp6"):
        table = Path("/proc/net") / name
        if not table.exists():
            continue
        for line in table.read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, port_hex = local.split(":")
            if state == "0A" and int(port_hex, 16) == port:  # 0A: LISTEN
                found.append(".".join(str(b) for b in bytes.fromhex(address)[::-1]) if len(address) == 8
                             else address)
    return found


def test_the_view_listens_on_loopback_only_by_default(franka_view):
    if not Path("/proc/net/tcp").exists():
        pytest.skip("needs Linux /proc/net/tcp to see which address the server bound")
    assert franka_view.host == "127.0.0.1"
    assert _listening_addresses(franka_view.port) == ["127.0.0.1"]


def test_the_shipped_layout_shows_only_served_topics():
    layout = json.loads(layout_path().read_text())
    served = {t.topic for t in view_topics(load_spec("franka_fr3"))} | {SAFETY_STATE_TOPIC}
    named: set[str] = set()
    for panel, config in layout["configById"].items():
        for key in ("topicPath", "topicToRender", "path"):
            if key in config:
                named.add(config[key])
        if "imageMode" in config:
            named.add(config["imageMode"]["imageTopic"])
        named.update(p["value"] for p in config.get("paths", ()))
    assert len(named) > 10
    topics = {n.split(".", 1)[0] for n in named}
    assert topics <= served, f"layout panels name topics the view does not serve: {sorted(topics - served)}"
    panels = set(layout["configById"])

    def leaves(node):
        return {node} if isinstance(node, str) else leaves(node["first"]) | leaves(node["second"])

    assert leaves(layout["layout"]) == panels


def test_topic_names_agree_with_the_nodes_and_the_flags_parse():
    from hpt_ros.nodes import fake_robot, policy_node
    from hpt_ros.view import topics, view_options

    assert topics.DIAGNOSTICS_TOPIC == policy_node.DIAGNOSTICS_TOPIC
    assert topics.PREDICTED_CHUNK_TOPIC == policy_node.PREDICTED_CHUNK_TOPIC
    assert topics.TREAT_POSE_TOPIC == fake_robot.TREAT_POSE_TOPIC
    assert topics.TASK_STATUS_TOPIC == fake_robot.TASK_STATUS_TOPIC
    parser = policy_node.build_arg_parser()
    assert view_options(parser.parse_args([])) is None
    options = view_options(parser.parse_args(["--view", "--view-port", "0"]))
    assert (options.host, options.port) == ("127.0.0.1", 0)
    with pytest.raises(ValueError, match="--view-port"):
        view_options(parser.parse_args(["--view", "--view-port", "70000"]))
