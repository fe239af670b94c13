"""The rclpy transport's wiring, checked against a thin fake ``rclpy`` (rclpy cannot run here).

The fake provides only what ``hpt_ros.ros.rclpy_transport`` touches and records the
calls: QoS profiles, callback groups, executor, parameters with descriptions, clock, raw
subscriptions, logging and shutdown.
"""

from __future__ import annotations

import enum
import logging
import sys
import types
from dataclasses import dataclass, field
from typing import Any

import pytest

from hpt_ros.ros.transport import QOS_DEFAULT, QOS_LATCHED, QOS_SENSOR_DATA, QoSProfile, Reliability, TransportError


class HistoryPolicy(enum.Enum):
    KEEP_LAST = 1


class ReliabilityPolicy(enum.Enum):
    RELIABLE = 1
    BEST_EFFORT = 2


class DurabilityPolicy(enum.Enum):
    TRANSIENT_LOCAL = 1
    VOLATILE = 2


@dataclass(frozen=True)
class FakeQoSProfile:
    history: HistoryPolicy
    depth: int
    reliability: ReliabilityPolicy
    durability: DurabilityPolicy


SENSOR_DATA = FakeQoSProfile(HistoryPolicy.KEEP_LAST, 5, ReliabilityPolicy.BEST_EFFORT, DurabilityPolicy.VOLATILE)


class MutuallyExclusiveCallbackGroup:
    pass


@dataclass
class Parameter:
    name: str
    value: Any = None


@dataclass
class ParameterDescriptor:
    description: str = ""


class FakeLogger:
    def __init__(self) -> None:
        self.lines: list[tuple[str, str]] = []

    def __getattr__(self, level: str) -> Any:
        return lambda text: self.lines.append((level, text))


@dataclass
class FakeTime:
    nanoseconds: int


class FakeClock:
    def now(self) -> FakeTime:
        return FakeTime(1_500_000_000)


@dataclass
class FakeNode:
    name: str
    namespace: str = ""
    parameter_overrides: list[Parameter] = field(default_factory=list)
    publishers: list[tuple] = field(default_factory=list)
    subscriptions: list[dict] = field(default_factory=list)
    timers: list[dict] = field(default_factory=list)
    declared: dict[str, tuple[Any, ParameterDescriptor]] = field(default_factory=dict)
    destroyed: int = 0
    context: object = "context"
    logger: FakeLogger = field(default_factory=FakeLogger)

    def __post_init__(self) -> None:
        FakeRclpy.nodes.append(self)

    def create_publisher(self, cls: type, topic: str, qos: Any) -> Any:
        publisher = types.SimpleNamespace(sent=[], publish=None)
        publisher.publish = publisher.sent.append
        self.publishers.append((cls, topic, qos, publisher))
        return publisher

    def create_subscription(self, cls: type, topic: str, callback: Any, qos: Any, *, callback_group: Any,
                            raw: bool = False) -> Any:
        self.subscriptions.append(dict(cls=cls, topic=topic, callback=callback, qos=qos, group=callback_group, raw=raw))
        return object()

    def create_timer(self, period: float, callback: Any, *, callback_group: Any) -> Any:
        timer = types.SimpleNamespace(cancelled=False)
        timer.cancel = lambda: setattr(timer, "cancelled", True)
        self.timers.append(dict(period=period, callback=callback, group=callback_group, timer=timer))
        return timer

    def get_clock(self) -> FakeClock:
        return FakeClock()

    def has_parameter(self, name: str) -> bool:
        return name in self.declared

    def get_parameter(self, name: str) -> Parameter:
        return Parameter(name, self.declared[name][0])

    def declare_parameter(self, name: str, default: Any, descriptor: ParameterDescriptor) -> Parameter:
        overrides = {p.name: p.value for p in self.parameter_overrides}
        value = overrides.get(name, default)
        self.declared[name] = (value, descriptor)
        return Parameter(name, value)

    def destroy_subscription(self, subscription: Any) -> None:
        pass

    def destroy_node(self) -> None:
        self.destroyed += 1

    def get_logger(self) -> FakeLogger:
        return self.logger


class MultiThreadedExecutor:
    def __init__(self, num_threads: int | None = None):
        self.num_threads = num_threads
        self.nodes: list[FakeNode] = []
        self.spins = 0
        self.shut_down = False
        FakeRclpy.executors.append(self)

    def add_node(self, node: FakeNode) -> None:
        self.nodes.append(node)

    def spin_once(self, timeout_sec: float) -> None:
        assert 0 < timeout_sec <= 0.05
        self.spins += 1
        for timer in self.nodes[0].timers:
            timer["callback"]()

    def shutdown(self) -> None:
        self.shut_down = True


class FakeRclpy:
    initialised = False
    shutdowns = 0
    nodes: list[FakeNode] = []
    executors: list[MultiThreadedExecutor] = []


@pytest.fixture
def fake_rclpy(monkeypatch: pytest.MonkeyPatch) -> type[FakeRclpy]:
    FakeRclpy.initialised, FakeRclpy.shutdowns, FakeRclpy.nodes, FakeRclpy.executors = False, 0, [], []

    def module(name: str, **attrs: Any) -> types.ModuleType:
        mod = types.ModuleType(name)
        mod.__dict__.update(attrs)
        monkeypatch.setitem(sys.modules, name, mod)
        return mod

    def init(args: Any = None) -> None:
        FakeRclpy.initialised = True

    def try_shutdown() -> None:
        FakeRclpy.shutdowns += 1
        FakeRclpy.initialised = False

    module("rclpy", ok=lambda context=None: FakeRclpy.initialised, init=init, try_shutdown=try_shutdown)
    module("rclpy.node", Node=FakeNode)
    module("rclpy.executors", MultiThreadedExecutor=MultiThreadedExecutor)
    module("rclpy.callback_groups", MutuallyExclusiveCallbackGroup=MutuallyExclusiveCallbackGroup)
    module("rclpy.parameter", Parameter=Parameter)
    module("rclpy.qos", QoSProfile=FakeQoSProfile, HistoryPolicy=HistoryPolicy, ReliabilityPolicy=ReliabilityPolicy,
           DurabilityPolicy=DurabilityPolicy, qos_profile_sensor_data=SENSOR_DATA)
    module("rcl_interfaces")
    module("rcl_interfaces.msg", ParameterDescriptor=ParameterDescriptor)
    module("rosidl_runtime_py")

    def get_message(name: str) -> type:
        if name == "sensor_msgs/msg/PointCloud9":
            raise AttributeError("no PointCloud9")
        return type(name.replace("/", "_"), (), {})

    module("rosidl_runtime_py.utilities", get_message=get_message)
    return FakeRclpy


def make(parameters: dict[str, Any] | None = None) -> Any:
    from hpt_ros.ros import make_transport

    return make_transport("rclpy", "policy_node", parameters)


def test_node_executor_and_parameters(fake_rclpy: type[FakeRclpy]) -> None:
    transport = make({"rate_hz": 15.0, "use_sim_time": True})
    node = fake_rclpy.nodes[0]
    assert transport.kind == "rclpy" and node.name == "policy_node" and fake_rclpy.initialised
    assert {p.name: p.value for p in node.parameter_overrides} == {"rate_hz": 15.0, "use_sim_time": True}
    assert fake_rclpy.executors[0].nodes == [node]
    assert transport.declare_parameter("rate_hz", 10.0, "control rate in Hz") == 15.0
    assert transport.declare_parameter("max_age_s", 0.2, "oldest sensor sample used") == 0.2
    assert transport.declare_parameter("max_age_s", 0.5) == 0.2  # already declared: keeps its value
    assert node.declared["rate_hz"][1].description == "control rate in Hz"
    assert node.declared["max_age_s"][1].description == "oldest sensor sample used"
    assert transport.now() == 1.5  # the node clock, which follows /clock under use_sim_time
    transport.shutdown()


def test_qos_mapping(fake_rclpy: type[FakeRclpy]) -> None:
    from hpt_ros.ros.rclpy_transport import rclpy_qos

    assert rclpy_qos(QOS_SENSOR_DATA) is SENSOR_DATA
    assert rclpy_qos(QOS_DEFAULT) == FakeQoSProfile(HistoryPolicy.KEEP_LAST, 10, ReliabilityPolicy.RELIABLE,
                                                    DurabilityPolicy.VOLATILE)
    assert rclpy_qos(QOS_LATCHED) == FakeQoSProfile(HistoryPolicy.KEEP_LAST, 1, ReliabilityPolicy.RELIABLE,
                                                    DurabilityPolicy.TRANSIENT_LOCAL)
    assert rclpy_qos(QoSProfile(3, Reliability.BEST_EFFORT)).reliability is ReliabilityPolicy.BEST_EFFORT


def test_pub_sub_timers_and_callback_groups(fake_rclpy: type[FakeRclpy]) -> None:
    transport = make()
    node = fake_rclpy.nodes[0]
    pub = transport.create_publisher("/joint_command", "trajectory_msgs/JointTrajectory")
    cls, topic, qos, publisher = node.publishers[0]
    assert cls.__name__ == "trajectory_msgs_msg_JointTrajectory" and topic == "/joint_command"
    assert pub.msg_type == "trajectory_msgs/msg/JointTrajectory"
    msg = transport.new_message("trajectory_msgs/msg/JointTrajectory")
    pub.publish(msg)
    pub.publish(bytearray(b"\x00\x01\x00\x00"))
    assert publisher.sent == [msg, b"\x00\x01\x00\x00"]

    transport.create_subscription("/camera/image", "sensor_msgs/msg/Image", print, QOS_SENSOR_DATA)
    transport.create_subscription("/joint_states", "sensor_msgs/msg/JointState", print, raw=True)
    camera, joints = node.subscriptions
    assert camera["qos"] is SENSOR_DATA and camera["raw"] is False and joints["raw"] is True
    assert camera["group"] is joints["group"] and isinstance(camera["group"], MutuallyExclusiveCallbackGroup)

    control = transport.create_timer(0.1, lambda: None)
    transport.create_timer(0.02, lambda: None)
    transport.create_timer(1.0, lambda: None, group="diagnostics")
    groups = [t["group"] for t in node.timers]
    assert groups[0] is groups[1] and groups[0] is not groups[2]
    assert all(isinstance(g, MutuallyExclusiveCallbackGroup) and g is not camera["group"] for g in groups)
    control.cancel()
    assert node.timers[0]["timer"].cancelled
    with pytest.raises(TransportError, match="invalid ROS 2 topic name"):
        transport.create_publisher("relative", "std_msgs/msg/Bool")
    with pytest.raises(TransportError, match="PointCloud9"):
        transport.new_message("sensor_msgs/PointCloud9")
    transport.shutdown()


def test_spin_until_and_idempotent_shutdown(fake_rclpy: type[FakeRclpy]) -> None:
    transport = make()
    calls: list[int] = []
    transport.create_timer(0.01, lambda: calls.append(1))
    transport.spin(until=lambda: len(calls) >= 3)
    assert len(calls) == 3
    transport.spin(duration_s=0.05)
    assert fake_rclpy.executors[0].spins >= 4
    transport.shutdown()
    transport.shutdown()
    assert fake_rclpy.nodes[0].destroyed == 1 and fake_rclpy.executors[0].shut_down and fake_rclpy.shutdowns == 1
    transport.spin()  # returns at once after shutdown


def test_python_logging_reaches_the_ros_logger(fake_rclpy: type[FakeRclpy]) -> None:
    transport = make()
    transport.logger.setLevel(logging.DEBUG)
    transport.logger.warning("camera %s is stale", "/wrist")
    transport.logger.error("model failed")
    assert fake_rclpy.nodes[0].logger.lines == [("warning", "camera /wrist is stale"), ("error", "model failed")]
    transport.shutdown()


def test_does_not_shut_down_a_context_it_did_not_create(fake_rclpy: type[FakeRclpy]) -> None:
    fake_rclpy.initialised = True  # e.g. a launch file's process already called rclpy.init()
    make().shutdown()
    assert fake_rclpy.shutdowns == 0

