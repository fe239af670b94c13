"""The ``dds`` transport: real Cyclone DDS traffic on loopback, between processes and within one.

The inter-process test starts an echo node in a separate Python process: it republishes
every message type it receives (decoded and re-encoded) and, through a ``raw=True``
subscription, CDR bytes as they arrived. Every message must come back with equal fields.
A random ROS_DOMAIN_ID per run keeps parallel runs apart.
"""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from conftest import require_module

require_module("cyclonedds")

from hpt_ros.msgs.idl import MESSAGE_TYPES  # noqa: E402
from hpt_ros.msgs.idl.examples import example_messages  # noqa: E402
from hpt_ros.ros import make_transport  # noqa: E402
from hpt_ros.ros.dds import DdsTransport, dds_qos, deserialize, domain_id_from_env, serialize  # noqa: E402
from hpt_ros.ros.transport import (  # noqa: E402
    QOS_LATCHED,
    QOS_SENSOR_DATA,
    Durability,
    QoSProfile,
    Reliability,
    TransportError,
)

REPO = pathlib.Path(__file__).resolve().parents[1]
DOMAIN_ID = 100 + os.getpid() % 100


@pytest.fixture(autouse=True)
def _domain(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ROS_DOMAIN_ID", str(DOMAIN_ID))


@pytest.fixture
def pair() -> Iterator[tuple[DdsTransport, DdsTransport]]:
    a, b = DdsTransport("node_a"), DdsTransport("node_b")
    yield a, b
    a.shutdown()
    b.shutdown()


def topic_of(msg_type: str, direction: str) -> str:
    return f"/{direction}/" + msg_type.replace("/", "_")


ECHO_NODE = """
import sys, threading
from hpt_ros.msgs.idl import MESSAGE_TYPES
from hpt_ros.ros.dds import DdsTransport
t = DdsTransport("echo")
for name in dict.keys(MESSAGE_TYPES):
    out = t.create_publisher("/echo_out/" + name.replace("/", "_"), name)
    t.create_subscription("/echo_in/" + name.replace("/", "_"), name, out.publish)
raw_out = t.create_publisher("/echo_out/raw", "sensor_msgs/msg/JointState")
t.create_subscription("/echo_in/raw", "sensor_msgs/msg/JointState", raw_out.publish, raw=True)
done = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
print("READY", flush=True)
t.spin(until=done.is_set)
t.shutdown()
print("BYE", flush=True)
"""


def test_every_message_type_crosses_processes_intact() -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO), ROS_DOMAIN_ID=str(DOMAIN_ID))
    child = subprocess.Popen([sys.executable, "-c", ECHO_NODE], env=env, cwd=REPO, text=True,
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert child.stdout.readline().strip() == "READY", child.stderr.read()
        examples = example_messages()
        received: dict[str, Any] = {}
        raw_received: list[bytes] = []
        node = DdsTransport("echo_tester")
        publishers = {}
        for name in examples:
            publishers[name] = node.create_publisher(topic_of(name, "echo_in"), name)
            node.create_subscription(topic_of(name, "echo_out"), name,
                                     lambda msg, name=name: received.setdefault(name, msg))
        raw_in = node.create_publisher("/echo_in/raw", "sensor_msgs/msg/JointState")
        node.create_subscription("/echo_out/raw", "sensor_msgs/msg/JointState", raw_received.append, raw=True)
        joint_state = examples["sensor_msgs/msg/JointState"]
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and (len(received) < len(examples) or not raw_received):
            for name, msg in examples.items():
                if name not in received:
                    publishers[name].publish(msg)
            if not raw_received:
                raw_in.publish(serialize(joint_state))
            node.spin(duration_s=0.2)
        node.shutdown()
    finally:
        child.stdin.close()
        child.wait(timeout=15)
    assert sorted(received) == sorted(examples), f"missing: {sorted(set(examples) - set(received))}"
    for name, msg in examples.items():
        assert received[name] == msg, name
        assert type(received[name]) is MESSAGE_TYPES[name]
    assert raw_received[0] == joint_state.serialize()
    assert child.returncode == 0 and "BYE" in child.stdout.read()


def wait_for(node: DdsTransport, condition: Any, timeout_s: float = 10.0) -> None:
    node.spin(until=condition, duration_s=timeout_s)
    assert condition(), "timed out"


def test_raw_subscription_gets_exact_bytes_including_odd_lengths(pair: tuple[DdsTransport, DdsTransport]) -> None:
    a, b = pair
    got: list[bytes] = []
    b.create_subscription("/chatter", "std_msgs/String", got.append, raw=True)
    pub = a.create_publisher("/chatter", "std_msgs/msg/String")
    texts = ["", "a", "ab", "abc", "abcd"]
    sent = []
    for text in texts:
        msg = a.new_message("std_msgs/msg/String")
        msg.data = text
        sent.append(msg.serialize())

    def all_arrived() -> bool:
        if not set(sent) <= set(got):
            for data in sent:
                pub.publish(data)
        return set(sent) <= set(got)

    wait_for(b, all_arrived)
    assert {deserialize("std_msgs/msg/String", data).data for data in got} >= set(texts)


def test_sensor_data_and_latched_qos(pair: tuple[DdsTransport, DdsTransport]) -> None:
    a, b = pair
    latched = a.create_publisher("/robot_description", "std_msgs/msg/String", QOS_LATCHED)
    msg = a.new_message("std_msgs/msg/String")
    msg.data = "<robot/>"
    latched.publish(msg)
    time.sleep(0.2)
    late: list[str] = []
    b.create_subscription("/robot_description", "std_msgs/msg/String", lambda m: late.append(m.data), QOS_LATCHED)
    wait_for(b, lambda: bool(late))  # transient local: delivered to a late joiner without republishing
    assert late == ["<robot/>"]

    images: list[Any] = []
    b.create_subscription("/camera", "sensor_msgs/msg/Image", images.append, QOS_SENSOR_DATA)
    cam = a.create_publisher("/camera", "sensor_msgs/msg/Image", QOS_SENSOR_DATA)
    image = example_messages()["sensor_msgs/msg/Image"]
    wait_for(b, lambda: bool(images) or cam.publish(image) or False)
    assert images[0] == image


def test_qos_mapping_is_explicit() -> None:
    from cyclonedds.core import Policy

    qos = dds_qos(QoSProfile(7, Reliability.BEST_EFFORT, Durability.TRANSIENT_LOCAL))
    assert qos[Policy.Reliability] == Policy.Reliability.BestEffort
    assert qos[Policy.Durability] == Policy.Durability.TransientLocal
    assert qos[Policy.History] == Policy.History.KeepLast(7)
    assert qos[Policy.DataRepresentation] == Policy.DataRepresentation(use_cdrv0_representation=True)
    assert dds_qos(QoSProfile(), min_depth=1000)[Policy.History] == Policy.History.KeepLast(1000)
    reliable = dds_qos(QoSProfile())[Policy.Reliability]
    assert isinstance(reliable, Policy.Reliability.Reliable)


def test_control_timer_does_not_block_message_callbacks(pair: tuple[DdsTransport, DdsTransport]) -> None:
    """A control callback that waits for ten new messages can only finish if messages are
    delivered while it runs (by count: no stopwatch; the 20 s are a deadlock guard)."""
    a, b = pair
    pub = a.create_publisher("/joint_states", "sensor_msgs/msg/JointState")
    msg = example_messages()["sensor_msgs/msg/JointState"]
    a.create_timer(0.005, lambda: pub.publish(msg), group="sender")
    sender_stop = threading.Event()
    sender = threading.Thread(target=a.spin, kwargs={"until": sender_stop.is_set, "duration_s": 60.0})
    sender.start()
    arrived = threading.Semaphore(0)
    threads: set[str] = set()
    delivered_during: list[bool] = []

    def on_joint_state(_: Any) -> None:
        threads.add(threading.current_thread().name)
        arrived.release()

    def slow_inference() -> None:
        threads.add(threading.current_thread().name)
        while arrived.acquire(blocking=False):  # drain what came before this call
            pass
        delivered_during.append(all(arrived.acquire(timeout=20.0) for _ in range(10)))

    try:
        b.create_subscription("/joint_states", "sensor_msgs/msg/JointState", on_joint_state)
        b.create_timer(0.05, slow_inference)
        b.spin(until=lambda: len(delivered_during) >= 2, duration_s=60.0)
    finally:
        sender_stop.set()
        sender.join()
    assert delivered_during[:2] == [True, True], "messages stopped while the control timer ran"
    assert threads == {"node_b-messages", "node_b-timers-control"}


def test_callback_exception_stops_spin_and_is_raised(pair: tuple[DdsTransport, DdsTransport]) -> None:
    a, _ = pair
    calls: list[int] = []

    def fail() -> None:
        calls.append(1)
        raise RuntimeError("inference failed")

    a.create_timer(0.01, fail)
    with pytest.raises(RuntimeError, match="inference failed"):
        a.spin(duration_s=60)
    assert calls == [1]  # spin stopped at the first failure instead of running its 60 s


def test_spin_duration_until_and_shutdown_from_a_callback() -> None:
    node = DdsTransport("lifecycle")
    ticks: list[float] = []
    node.create_timer(0.02, lambda: ticks.append(node.now()))
    wall_before, started = time.time(), time.monotonic()
    node.spin(duration_s=0.3)
    elapsed, wall_after = time.monotonic() - started, time.time()
    # spin lasts at least its duration; a late timer skips periods instead of bursting to catch up
    assert elapsed >= 0.3 and len(ticks) <= elapsed / 0.02 + 1
    node.spin(until=lambda: len(ticks) >= 20)
    assert len(ticks) >= 20
    assert ticks == sorted(ticks) and wall_before <= ticks[0] and node.now() >= wall_after  # the wall clock
    node.create_timer(0.01, node.shutdown, group="other")
    node.spin()  # returns because a callback shut the transport down
    assert node.is_shut_down
    node.shutdown()  # idempotent
    with pytest.raises(TransportError, match="shut down"):
        node.create_publisher("/x", "std_msgs/msg/Bool")


def test_timer_cancel_stops_calls() -> None:
    with DdsTransport("cancelling") as node:
        calls: list[int] = []
        timer = node.create_timer(0.01, lambda: calls.append(1))
        node.spin(until=lambda: len(calls) >= 3)
        timer.cancel()
        count = len(calls)
        node.spin(duration_s=0.1)
        assert len(calls) == count


def test_names_types_and_domain_are_validated(monkeypatch: pytest.MonkeyPatch) -> None:
    with DdsTransport("validator") as node:
        with pytest.raises(TransportError, match="invalid ROS 2 topic name 'no_slash'"):
            node.create_publisher("no_slash", "std_msgs/msg/Bool")
        with pytest.raises(TransportError, match="/pc: message type 'sensor_msgs/msg/PointCloud2' has no IDL struct"):
            node.create_subscription("/pc", "sensor_msgs/msg/PointCloud2", print)
        node.create_publisher("/flag", "std_msgs/msg/Bool")
        with pytest.raises(TransportError, match="/flag: already used with type std_msgs/msg/Bool"):
            node.create_subscription("/flag", "std_msgs/msg/String", print)
        msg = node.new_message("geometry_msgs/Twist")
        assert msg.linear.x == 0.0
    monkeypatch.setenv("ROS_DOMAIN_ID", "abc")
    with pytest.raises(TransportError, match="ROS_DOMAIN_ID='abc'"):
        domain_id_from_env()
    monkeypatch.setenv("ROS_DOMAIN_ID", "")
    assert domain_id_from_env() == 0


def test_make_transport_builds_dds_and_names_unknown_kinds() -> None:
    node = make_transport("dds", "factory_made", {"rate_hz": 10.0})
    try:
        assert node.kind == "dds" and node.declare_parameter("rate_hz", 5.0, "control rate") == 10.0
        assert node.declare_parameter("max_age_s", 0.2) == 0.2
    finally:
        node.shutdown()
    with pytest.raises(TransportError, match="unknown transport kind 'ros1'.*available: dds, rclpy, replay"):
        make_transport("ros1", "n")


def test_publish_accepts_messages_of_other_flavours(pair: tuple[DdsTransport, DdsTransport]) -> None:
    typesys = require_module("rosbags.typesys")
    from hpt_ros.msgs._flavours import default_instance
    from hpt_ros.msgs.messages import fill_joint_state

    a, b = pair
    typestore = typesys.get_typestore(typesys.Stores.ROS2_HUMBLE)
    rosbags_msg = fill_joint_state(default_instance(typestore.types["sensor_msgs/msg/JointState"]),
                                   ["j1", "j2"], [0.5, 1.5], stamp_s=2.0)
    got: list[Any] = []
    b.create_subscription("/js", "sensor_msgs/msg/JointState", got.append)
    pub = a.create_publisher("/js", "sensor_msgs/msg/JointState")
    wait_for(b, lambda: bool(got) or pub.publish(rosbags_msg) or False)
    assert got[0].name == ["j1", "j2"] and np.array_equal(got[0].position, [0.5, 1.5])
    assert bytes(typestore.serialize_cdr(rosbags_msg, "sensor_msgs/msg/JointState")) == serialize(got[0])


def test_destroyed_subscription_gets_no_more_messages(pair: tuple[DdsTransport, DdsTransport]) -> None:
    a, b = pair
    pub = a.create_publisher("/ticks", "std_msgs/msg/Float64")
    got: list[float] = []
    sub = b.create_subscription("/ticks", "std_msgs/msg/Float64", lambda m: got.append(m.data))
    msg = a.new_message("std_msgs/msg/Float64")
    wait_for(b, lambda: bool(got) or pub.publish(msg) or False)

    def destroy_after_three(m: Any) -> None:
        got.append(m.data)
        if len(got) >= 3:
            sub.destroy()  # from inside its own callback, on the message thread

    sub.callback = destroy_after_three
    a.create_timer(0.005, lambda: pub.publish(msg), group="sender")
    sending = threading.Event()
    sender = threading.Thread(target=a.spin, kwargs={"until": lambda: not sending.is_set(), "duration_s": 60.0})
    sending.set()
    sender.start()
    try:
        b.spin(until=lambda: len(got) >= 3, duration_s=30.0)
        count = len(got)
        b.spin(duration_s=0.3)  # the sender keeps publishing meanwhile
    finally:
        sending.clear()
        sender.join()
    assert count >= 3 and len(got) == count


def test_shutdown_from_another_thread_ends_spin_and_deletes_entities() -> None:
    node = DdsTransport("stopped_from_outside")
    node.create_subscription("/anything", "std_msgs/msg/Bool", print)
    spinning = threading.Event()
    node.create_timer(0.01, spinning.set)
    spinner = threading.Thread(target=node.spin)  # no duration: only the shutdown can end it
    spinner.start()
    assert spinning.wait(30.0)
    node.shutdown()
    spinner.join(30.0)  # a deadlock guard, not a speed goal
    assert not spinner.is_alive() and node.is_shut_down and node._closed
    node.shutdown()


SIGINT_NODE = """
import signal
# a shell without job control starts background jobs with SIGINT ignored, and Python then
# installs no KeyboardInterrupt handler: restore it, as an interactive terminal would have it
signal.signal(signal.SIGINT, signal.default_int_handler)
from hpt_ros.ros.dds import DdsTransport
node = DdsTransport("interrupted")
node.create_subscription("/anything", "std_msgs/msg/Bool", print)
node.create_timer(0.01, lambda: None)
print("READY", flush=True)
try:
    node.spin()
except KeyboardInterrupt:
    node.shutdown()
    node.shutdown()
    print("CLEAN", flush=True)
"""


def test_ctrl_c_interrupts_spin_cleanly() -> None:
    import signal

    env = dict(os.environ, PYTHONPATH=str(REPO), ROS_DOMAIN_ID=str(DOMAIN_ID))
    child = subprocess.Popen([sys.executable, "-c", SIGINT_NODE], env=env, cwd=REPO, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert child.stdout.readline().strip() == "READY"
    time.sleep(0.2)
    child.send_signal(signal.SIGINT)
    out, err = child.communicate(timeout=15)
    assert child.returncode == 0, err
    assert "CLEAN" in out


RECORDER_LOAD_NODE = """
import sys
import numpy as np
from hpt_ros.msgs.messages import fill_joint_state, numpy_to_image
from hpt_ros.ros.dds import DdsTransport
node = DdsTransport("robot")
joints = node.create_publisher("/joint_states", "sensor_msgs/msg/JointState")
cameras = [node.create_publisher(t, "sensor_msgs/msg/Image") for t in ("/cam_wrist", "/cam_scene")]
names = [f"fr3_joint{i}" for i in range(1, 8)]
js = node.new_message("sensor_msgs/msg/JointState")
image = numpy_to_image(node.new_message("sensor_msgs/msg/Image"), np.zeros((480, 640, 3), np.uint8), "rgb8")
sent = {"joints": 0, "images": 0}
go = [False]
def publish_joints():
    if go[0] and sent["joints"] < JOINT_STATES:
        fill_joint_state(js, names, np.full(7, float(sent["joints"])), stamp_s=node.now())
        joints.publish(js)
        sent["joints"] += 1
def publish_images():
    if go[0]:
        for camera in cameras:
            image.header.frame_id = str(sent["images"])
            camera.publish(image)
            sent["images"] += 1
JOINT_STATES = int(sys.argv[1])
node.create_timer(0.001, publish_joints, group="joints")
node.create_timer(1 / 30, publish_images, group="cameras")
print("READY", flush=True)
node.spin(duration_s=1.0)  # discovery
go[0] = True
# a count, at whatever rate this machine manages
node.spin(until=lambda: sent["joints"] >= JOINT_STATES, duration_s=300.0)
go[0] = False
node.spin(duration_s=0.5)  # acknowledgements
print("SENT", sent["joints"], sent["images"], flush=True)
node.shutdown()
"""


def test_raw_subscriptions_record_every_message_of_a_1khz_robot_and_two_cameras() -> None:
    from hpt_ros.msgs.idl.sensor_msgs import JointState

    recorder = DdsTransport("recorder")
    joint_bytes: list[bytes] = []
    image_bytes: list[bytes] = []
    recorder.create_subscription("/joint_states", "sensor_msgs/msg/JointState", joint_bytes.append, raw=True)
    for camera in ("/cam_wrist", "/cam_scene"):
        recorder.create_subscription(camera, "sensor_msgs/msg/Image", image_bytes.append, raw=True)
    env = dict(os.environ, PYTHONPATH=str(REPO), ROS_DOMAIN_ID=str(DOMAIN_ID))
    child = subprocess.Popen([sys.executable, "-c", RECORDER_LOAD_NODE, "2000"], env=env, cwd=REPO, text=True,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    started = time.monotonic()
    try:
        assert child.stdout.readline().strip() == "READY"
        recorder.spin(until=lambda: child.poll() is not None, duration_s=360)
        out, err = child.communicate(timeout=10)
        recorder.spin(duration_s=0.2)
    finally:
        recorder.shutdown()
        if child.poll() is None:
            child.kill()
    joints_sent, images_sent = (int(n) for n in out.split("SENT", 1)[1].split()[:2])
    positions = [JointState.deserialize(data).position[0] for data in joint_bytes]
    # the publisher's rate is this machine's business (bench/bench_recorder.py measures it); what
    # is tested is that a subscriber under that load records every message, in order
    assert joints_sent == 2000 and images_sent > 0
    assert len(joint_bytes) == joints_sent, f"{len(joint_bytes)} of {joints_sent} joint states recorded"
    assert positions == sorted(positions) and len(set(positions)) == len(positions)
    assert len(image_bytes) == images_sent, f"{len(image_bytes)} of {images_sent} images recorded"
    print(f"recorded {len(joint_bytes)} joint states and {len(image_bytes)} images, none dropped "
          f"({time.monotonic() - started:.1f} s with discovery)")
