"""The rclpy transport on real rclpy: node, parameters with descriptors, QoS, pub/sub
(decoded and raw), timers in a thread per group, the node clock under use_sim_time,
logging to /rosout, errors in timer callbacks, and shutdown."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import rclpy
from rclpy.qos import DurabilityPolicy, ReliabilityPolicy, qos_profile_sensor_data

from igmp import non_loopback_groups

from hpt_ros.ros import make_transport
from hpt_ros.ros.rclpy_transport import rclpy_qos
from hpt_ros.ros.transport import (
    QOS_DEFAULT,
    QOS_LATCHED,
    QOS_SENSOR_DATA,
    RAW_MIN_DEPTH,
    QoSProfile,
    Reliability,
    TransportError,
)


def make(name: str = "policy_node", parameters: dict[str, Any] | None = None) -> Any:
    return make_transport("rclpy", name, parameters)


def test_node_parameters_and_descriptors() -> None:
    before = non_loopback_groups()
    transport = make(parameters={"rate_hz": 15.0})
    try:
        transport.spin(duration_s=1.0)  # discovery under way
        assert non_loopback_groups() <= before, "the node joined a multicast group off loopback"
        node = transport.node
        assert transport.kind == "rclpy" and node.get_name() == "policy_node" and rclpy.ok()
        assert transport.declare_parameter("rate_hz", 10.0, "control rate in Hz") == 15.0  # the override wins
        assert transport.declare_parameter("max_age_s", 0.2, "oldest sensor sample used") == 0.2
        assert transport.declare_parameter("max_age_s", 0.5) == 0.2  # already declared: keeps its value
        assert node.describe_parameter("rate_hz").description == "control rate in Hz"
        assert node.describe_parameter("max_age_s").description == "oldest sensor sample used"
        assert abs(transport.now() - time.time()) < 5.0  # the system clock without use_sim_time
    finally:
        transport.shutdown()
    assert not rclpy.ok()  # it created the context, so it shut it down


def test_qos_mapping() -> None:
    assert rclpy_qos(QOS_SENSOR_DATA) is qos_profile_sensor_data
    default = rclpy_qos(QOS_DEFAULT)
    assert (default.depth, default.reliability, default.durability) == (10, ReliabilityPolicy.RELIABLE,
                                                                        DurabilityPolicy.VOLATILE)
    latched = rclpy_qos(QOS_LATCHED)
    assert (latched.depth, latched.durability) == (1, DurabilityPolicy.TRANSIENT_LOCAL)
    assert rclpy_qos(QoSProfile(3, Reliability.BEST_EFFORT)).reliability is ReliabilityPolicy.BEST_EFFORT


def test_pub_sub_decoded_and_raw_and_threads() -> None:
    transport = make()
    try:
        decoded: list[Any] = []
        raw: list[bytes] = []
        cameras: list[Any] = []
        transport.create_subscription("/joint_states", "sensor_msgs/JointState", decoded.append)
        raw_sub = transport.create_subscription("/joint_states", "sensor_msgs/msg/JointState", raw.append, raw=True)
        # a recorder that falls behind for a moment keeps what keep-last 10 would overwrite
        assert raw_sub.subscription.qos_profile.depth == RAW_MIN_DEPTH
        cam_sub = transport.create_subscription("/camera/image", "sensor_msgs/msg/Image", cameras.append,
                                                QOS_SENSOR_DATA)
        pub = transport.create_publisher("/joint_states", "sensor_msgs/msg/JointState")
        assert pub.msg_type == "sensor_msgs/msg/JointState"
        msg = transport.new_message("sensor_msgs/msg/JointState")
        msg.name, msg.position = ["fr3_joint1"], [0.25]
        ticks = []
        timer = transport.create_timer(0.02, lambda: (ticks.append(1), pub.publish(msg)))
        transport.spin(until=lambda: len(decoded) >= 3 and len(raw) >= 3, duration_s=20.0)
        assert list(decoded[0].name) == ["fr3_joint1"] and list(decoded[0].position) == [0.25]
        assert isinstance(raw[0], bytes) and raw[0][:4] == b"\x00\x01\x00\x00" and b"fr3_joint1" in raw[0]
        pub.publish(bytearray(raw[0]))  # CDR bytes are published as they are
        n = len(decoded)
        timer.cancel()
        transport.spin(until=lambda: len(decoded) > n, duration_s=20.0)
        assert list(decoded[-1].name) == ["fr3_joint1"]

        # message callbacks run in the spinning thread; timers in one thread per group name
        threads: dict[str, set[str]] = {"messages": set(), "control": set(), "diagnostics": set()}
        transport.create_subscription("/joint_states", "sensor_msgs/msg/JointState",
                                      lambda m: threads["messages"].add(threading.current_thread().name))
        transport.create_timer(0.02, lambda: threads["control"].add(threading.current_thread().name))
        transport.create_timer(0.03, lambda: threads["control"].add(threading.current_thread().name))
        transport.create_timer(0.02, lambda: (threads["diagnostics"].add(threading.current_thread().name),
                                              pub.publish(msg)), group="diagnostics")
        transport.spin(until=lambda: all(threads.values()), duration_s=20.0)
        assert threads["messages"] == {threading.current_thread().name}
        assert threads["control"] == {transport.group_thread("control").name}
        assert threads["diagnostics"] == {transport.group_thread("diagnostics").name}
        assert transport.group_thread("control") is not transport.group_thread("diagnostics")
        assert cam_sub.subscription.qos_profile.reliability is ReliabilityPolicy.BEST_EFFORT
        with pytest.raises(TransportError, match="invalid ROS 2 topic name"):
            transport.create_publisher("relative", "std_msgs/msg/Bool")
        with pytest.raises(TransportError, match="sensor_msgs/PointCloud9.*not available"):
            transport.new_message("sensor_msgs/PointCloud9")
        with pytest.raises(TransportError, match="no_such_msgs/msg/Thing.*not available"):
            transport.new_message("no_such_msgs/msg/Thing")
    finally:
        transport.shutdown()


def test_slow_control_timer_does_not_delay_message_callbacks() -> None:
    """A 100 ms inference in the control timer: camera and joint-state callbacks keep running meanwhile."""
    transport = make()
    feeder = make("feeder")
    try:
        in_inference = threading.Event()
        during: dict[str, int] = {"camera": 0, "joints": 0}
        inferences: list[int] = []

        def counter(key: str):
            def callback(msg: Any) -> None:
                if in_inference.is_set():
                    during[key] += 1
            return callback

        def inference() -> None:
            in_inference.set()
            time.sleep(0.1)
            in_inference.clear()
            inferences.append(1)

        transport.create_subscription("/camera/image", "sensor_msgs/msg/Image", counter("camera"), QOS_SENSOR_DATA)
        transport.create_subscription("/joint_states", "sensor_msgs/msg/JointState", counter("joints"))
        transport.create_timer(0.1, inference)
        image_pub = feeder.create_publisher("/camera/image", "sensor_msgs/msg/Image", QOS_SENSOR_DATA)
        joint_pub = feeder.create_publisher("/joint_states", "sensor_msgs/msg/JointState")
        image, joints = feeder.new_message("sensor_msgs/msg/Image"), feeder.new_message("sensor_msgs/msg/JointState")
        image.height, image.width, image.encoding, image.step = 4, 4, "rgb8", 12
        image.data = bytes(48)
        joints.name, joints.position = ["j"], [0.0]
        feeder.create_timer(0.01, lambda: (image_pub.publish(image), joint_pub.publish(joints)))
        feeder_thread = threading.Thread(target=feeder.spin, kwargs={"duration_s": 30.0}, daemon=True)
        feeder_thread.start()
        transport.spin(until=lambda: min(during.values()) >= 5 and len(inferences) >= 3, duration_s=30.0)
        assert min(during.values()) >= 5, f"callbacks while inference ran: {during}"
    finally:
        feeder.shutdown()
        transport.shutdown()


def test_use_sim_time_follows_clock() -> None:
    transport = make(parameters={"use_sim_time": True})
    clock_node = make("clock_publisher")
    try:
        assert transport.now() == 0.0  # no /clock yet
        clock_pub = clock_node.create_publisher("/clock", "rosgraph_msgs/msg/Clock", QOS_DEFAULT)
        clock = clock_node.new_message("rosgraph_msgs/msg/Clock")
        clock.clock.sec, clock.clock.nanosec = 1234, 500_000_000
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and transport.now() != 1234.5:
            clock_pub.publish(clock)
            transport.spin(duration_s=0.05)
        assert transport.now() == 1234.5
        ticks: list[float] = []
        transport.create_timer(0.5, lambda: ticks.append(transport.now()))  # 0.5 s of simulated time
        transport.spin(duration_s=0.7)
        assert ticks == []  # 0.7 s of wall time, but simulated time stood still: the timer has not fired
        while time.monotonic() < deadline and not ticks:
            clock.clock.sec += 1
            clock_pub.publish(clock)
            transport.spin(duration_s=0.05)
        assert ticks and ticks[0] >= 1235.0
    finally:
        clock_node.shutdown()
        transport.shutdown()


def test_python_logging_reaches_rosout() -> None:
    transport = make()
    listener = make("rosout_listener")
    try:
        lines: list[tuple[int, str, str]] = []
        listener.create_subscription("/rosout", "rcl_interfaces/msg/Log",
                                     lambda m: lines.append((m.level, m.name, m.msg)), QOS_LATCHED)
        deadline = time.monotonic() + 20.0
        while time.monotonic() < deadline and not any("camera /wrist is stale" in line[2] for line in lines):
            transport.logger.warning("camera %s is stale", "/wrist")
            listener.spin(duration_s=0.1)
        assert (30, "policy_node", "camera /wrist is stale") in lines  # 30: WARN
    finally:
        listener.shutdown()
        transport.shutdown()


def test_timer_callback_error_stops_spin_and_is_raised() -> None:
    transport = make()
    try:
        def failing() -> None:
            raise ValueError("tick failed")

        transport.create_timer(0.01, failing)
        with pytest.raises(ValueError, match="tick failed"):
            transport.spin(duration_s=20.0)
    finally:
        transport.shutdown()


def test_destroying_a_timer_waits_for_its_running_call() -> None:
    """A lifecycle cleanup destroys the control timer, then the publishers a running tick uses:
    the timer's destroy returns only once that tick is over."""
    transport = make()
    try:
        publisher = transport.create_publisher("/tick_out", "std_msgs/msg/Bool")
        started, finished = threading.Event(), threading.Event()

        def slow_tick() -> None:
            started.set()
            time.sleep(0.5)
            msg = transport.new_message("std_msgs/msg/Bool")
            publisher.publish(msg)  # fails if the publisher is already destroyed
            finished.set()

        timer = transport.create_timer(0.01, slow_tick)
        spinner = threading.Thread(target=transport.spin, kwargs={"until": finished.is_set, "duration_s": 20.0})
        spinner.start()
        assert started.wait(20.0), "the timer never fired"
        timer.destroy()
        assert finished.is_set(), "destroy returned while the timer's call was still running"
        publisher.destroy()
        spinner.join(timeout=20.0)
        transport.spin(duration_s=0.2)  # an error in the timer's thread would be raised here
    finally:
        transport.shutdown()


def test_spin_until_and_idempotent_shutdown() -> None:
    transport = make()
    calls: list[int] = []
    transport.create_timer(0.01, lambda: calls.append(1))
    transport.spin(until=lambda: len(calls) >= 3, duration_s=20.0)
    assert len(calls) >= 3
    transport.shutdown()
    transport.shutdown()
    transport.spin()  # returns at once after shutdown
    assert not rclpy.ok()


def test_spin_returns_when_a_signal_shuts_the_context_down_mid_wait() -> None:
    """SIGTERM's handler may shut the context down after spin checked it and before the executor
    builds its wait set; rcl then refuses the wait set and spin must end cleanly, not raise."""
    transport = make()
    real_spin_once = transport._executor.spin_once

    def signal_lands_now(timeout_sec: float | None = None) -> None:
        rclpy.try_shutdown(context=transport.node.context)  # what rclpy's signal handler does
        real_spin_once(timeout_sec=timeout_sec)

    transport._executor.spin_once = signal_lands_now
    try:
        transport.spin(duration_s=5.0)
        assert not rclpy.ok(context=transport.node.context)
    finally:
        transport.shutdown()


def test_does_not_shut_down_a_context_it_did_not_create() -> None:
    rclpy.init()  # e.g. a launch file's process already called rclpy.init()
    try:
        make().shutdown()
        assert rclpy.ok()
    finally:
        rclpy.shutdown()


def test_lifecycle_handler_released_after_external_shutdown() -> None:
    """SIGINT / SIGTERM: rclpy's handlers shut the context down first; the managed node's
    on_shutdown still runs when the transport shuts down."""
    transport = make_transport("rclpy", "managed", lifecycle=True)
    calls: list[str] = []

    class Handler:
        def on_shutdown(self) -> None:
            calls.append("shutdown")

    transport.set_lifecycle_handler(Handler())
    assert transport.lifecycle_state() == "unconfigured"
    rclpy.shutdown()  # what rclpy's signal handler does
    transport.shutdown()
    assert calls == ["shutdown"]


def test_lifecycle_handler_needs_a_lifecycle_node() -> None:
    transport = make()
    try:
        with pytest.raises(TransportError, match="not a lifecycle node"):
            transport.set_lifecycle_handler(object())
    finally:
        transport.shutdown()
