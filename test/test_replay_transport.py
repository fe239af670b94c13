"""The ``replay`` transport: simulated clock, timers in time order, in-process pub/sub, bag input.

Also the in-process use without a bag: the fake robot and the policy node on sibling
transports, a deterministic closed loop faster than real time.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hpt_ros.data import EpisodeWriter, open_bag
from hpt_ros.data.errors import BagTopicError
from hpt_ros.engine.base import Engine
from hpt_ros.msgs import messages
from hpt_ros.msgs.idl import MESSAGE_TYPES, new_message
from hpt_ros.ros import make_transport
from hpt_ros.ros.replay import Published, ReplayTransport
from hpt_ros.ros.transport import QOS_LATCHED, TransportError

ROOT = Path(__file__).resolve().parents[1]
T0 = 1_690_000_000_000_000_000  # bag start [ns]


def make_bag(path: Path, joint_period_ms: int = 100, count: int = 10, extra: bool = True) -> Path:
    """JointState every ``joint_period_ms`` from T0 and a Float64MultiArray at T0 + 250 ms."""
    topics = {"/joint_states": "sensor_msgs/msg/JointState"}
    if extra:
        topics["/value"] = "std_msgs/msg/Float64MultiArray"
    with EpisodeWriter(path, topics, min_free_bytes=0, flush_interval_s=None, fsync=False) as writer:
        for k in range(count):
            t = T0 + k * joint_period_ms * 1_000_000
            msg = messages.fill_joint_state(new_message("sensor_msgs/msg/JointState"), ["a", "b"], [k, -k],
                                            stamp_s=t / 1e9)
            writer.write("/joint_states", t, msg.serialize())
            if extra and k == 2:
                v = messages.fill_float64_multi_array(new_message("std_msgs/msg/Float64MultiArray"), [2.5])
                writer.write("/value", t + 50_000_000, v.serialize())
    return path


# -- clock and timers ------------------------------------------------------------------------------

def test_timers_fire_in_time_order_on_the_simulated_clock():
    t = make_transport("replay", "timers", start_time=10.0)
    assert isinstance(t, ReplayTransport) and t.kind == "replay" and t.now() == 10.0
    calls: list[tuple[str, float]] = []
    t.create_timer(0.1, lambda: calls.append(("a", t.now())))
    t.create_timer(0.25, lambda: calls.append(("b", t.now())))
    t.create_timer(0.2, lambda: calls.append(("c", t.now())))
    reached = t.run(until=10.5)
    assert reached == 10.5 and t.now() == 10.5
    assert calls == [("a", 10.1), ("a", 10.2), ("c", 10.2), ("b", 10.25), ("a", 10.3), ("a", 10.4), ("c", 10.4),
                     ("a", 10.5), ("b", 10.5)]  # same instant: creation order  # fmt: skip
    # the clock advances to each event: nothing between 10.5 and 10.55, and the next tick of a at 10.6
    t.run(until=10.55)
    assert t.now() == 10.55 and len(calls) == 9
    t.spin(duration_s=0.05)
    assert t.now() == pytest.approx(10.6) and calls[9:] == [("a", pytest.approx(10.6)), ("c", pytest.approx(10.6))]


def test_timer_grid_is_exact_integer_nanoseconds():
    t = ReplayTransport("grid", start_ns=T0)
    seen: list[int] = []
    t.create_timer(1 / 15, lambda: seen.append(t.now_ns()))
    t.run(until_ns=T0 + 1_000_000_000)
    assert seen == [T0 + k * 66_666_667 for k in range(1, 15)]


def test_cancel_and_timers_created_by_callbacks():
    t = ReplayTransport("cancel", start_time=0.0)
    calls: list[tuple[str, float]] = []
    timers: dict[str, Any] = {}

    def once() -> None:
        calls.append(("once", t.now()))
        timers["once"].cancel()
        t.create_timer(0.05, lambda: calls.append(("late", t.now())))

    timers["once"] = t.create_timer(0.1, once)
    t.run(until=0.2)
    assert calls == [("once", 0.1), ("late", pytest.approx(0.15)), ("late", pytest.approx(0.2))]
    with pytest.raises(ValueError, match="positive"):
        t.create_timer(0.0, lambda: None)


def test_timers_created_before_the_clock_starts_are_anchored_at_the_bag_start(tmp_path):
    bag = make_bag(tmp_path / "bag", extra=False)
    t = ReplayTransport("anchored")
    assert t.now() == 0.0
    ticks: list[int] = []
    t.create_timer(0.25, lambda: ticks.append(t.now_ns()))
    feed = t.feed_bag(bag)
    assert feed.start_ns == T0 and t.now_ns() == T0
    t.run()  # to the bag's last message (T0 + 900 ms)
    assert ticks == [T0 + 250_000_000, T0 + 500_000_000, T0 + 750_000_000] and t.now_ns() == T0 + 900_000_000


# -- pub/sub in process ----------------------------------------------------------------------------

def test_publish_delivers_in_process_at_the_current_time_and_is_recorded():
    a = ReplayTransport("talker", start_time=1.0)
    b = a.sibling("listener")
    log: list[Any] = []
    pub = a.create_publisher("/chatter", "std_msgs/msg/String")

    def talk() -> None:
        msg = a.new_message("std_msgs/msg/String")
        msg.data = f"at {a.now():.1f}"
        pub.publish(msg)
        log.append(("published", a.now()))  # runs before delivery: delivery follows the callback

    a.create_timer(0.5, talk)
    b.create_subscription("/chatter", "std_msgs/msg/String", lambda m: log.append(("heard", b.now(), m.data)))
    b.create_subscription("/chatter", "std_msgs/msg/String", lambda m: log.append(("raw", bytes(m))), raw=True)
    a.run(until=2.0)
    assert log[:3] == [("published", 1.5), ("heard", 1.5, "at 1.5"),
                       ("raw", MESSAGE_TYPES["std_msgs/msg/String"](data="at 1.5").serialize())]
    assert [p.time for p in a.published] == [1.5, 2.0] and b.published is a.published
    assert a.published[0] == Published("/chatter", 1.5, MESSAGE_TYPES["std_msgs/msg/String"](data="at 1.5"))
    assert [p.msg.data for p in b.published_on("/chatter")] == ["at 1.5", "at 2.0"]
    # CDR bytes published reach a typed subscriber decoded
    got: list[Any] = []
    b.create_subscription("/bytes", "std_msgs/msg/Float64", got.append)
    a.create_publisher("/bytes", "std_msgs/msg/Float64").publish(MESSAGE_TYPES["std_msgs/msg/Float64"](data=4.0)
                                                                 .serialize())
    a.run(until=2.1)
    assert got == [MESSAGE_TYPES["std_msgs/msg/Float64"](data=4.0)]


def test_record_filter_latched_topics_and_type_mismatch():
    t = ReplayTransport("latch", start_time=0.0, record=["/kept"])
    t.create_publisher("/kept", "std_msgs/msg/Bool").publish(t.new_message("std_msgs/msg/Bool"))
    latched = t.create_publisher("/latched", "std_msgs/msg/Bool", QOS_LATCHED)
    msg = t.new_message("std_msgs/msg/Bool")
    msg.data = True
    latched.publish(msg)
    assert [p.topic for p in t.published] == ["/kept"]
    late: list[Any] = []
    t.create_subscription("/latched", "std_msgs/msg/Bool", late.append, QOS_LATCHED)
    t.create_subscription("/latched", "std_msgs/msg/Bool", lambda m: late.append("volatile"))  # gets nothing old
    t.run(until=0.1)
    assert [m.data for m in late] == [True]
    t.create_subscription("/kept", "std_msgs/msg/Float64", lambda m: None)
    with pytest.raises(TransportError, match="'/kept' carries std_msgs/msg/Bool.*subscribes to it with type "
                                             "std_msgs/msg/Float64"):
        t.create_publisher("/kept", "std_msgs/msg/Bool").publish(t.new_message("std_msgs/msg/Bool"))


def test_new_message_gives_idl_defaults_or_rosbags_dataclasses():
    t = ReplayTransport("msgs")
    image = t.new_message("sensor_msgs/Image")
    assert type(image) is MESSAGE_TYPES["sensor_msgs/msg/Image"] and image.height == 0 and image.encoding == ""
    log = t.new_message("rcl_interfaces/msg/Log")  # no IDL struct: a default rosbags dataclass
    assert log.msg == "" and log.level == 0 and log.stamp.sec == 0
    with pytest.raises(TransportError, match="unknown message type"):
        t.new_message("nope_msgs/msg/Nope")


# -- spin, stop, errors ------------------------------------------------------------------------------

def test_spin_until_shutdown_and_errors():
    t = ReplayTransport("spin")
    with pytest.raises(TransportError, match="would run forever"):
        t.run()
    count = {"n": 0}

    def tick() -> None:
        count["n"] += 1
        if count["n"] == 3:
            t.shutdown()

    t.create_timer(1.0, tick)
    t.spin(until=lambda: False)
    assert count["n"] == 3 and t.now() == 3.0 and t.is_shut_down
    with pytest.raises(TransportError, match="shut down"):
        t.create_timer(1.0, tick)

    u = ReplayTransport("until", start_time=0.0)
    u.create_timer(0.1, lambda: None)
    u.spin(until=lambda: u.now() >= 0.35)
    assert u.now() == pytest.approx(0.4)

    v = ReplayTransport("raises", start_time=0.0)

    def boom() -> None:
        raise RuntimeError("boom")

    v.create_timer(0.1, boom)
    with pytest.raises(RuntimeError, match="boom"):
        v.run(until=1.0)
    assert v.now() == pytest.approx(0.1)
    with pytest.raises(RuntimeError, match="boom"):  # the timer was rescheduled: the replay goes on
        v.run(until=1.0)
    assert v.now() == pytest.approx(0.2)


# -- bag input ------------------------------------------------------------------------------------------

def test_feed_bag_merges_messages_and_timers_by_timestamp(tmp_path):
    bag = make_bag(tmp_path / "bag")
    events: list[tuple[str, int, Any]] = []
    with open_bag(bag) as reader:
        t = ReplayTransport("bagged", start_ns=T0)
        t.create_subscription("/joint_states", "sensor_msgs/msg/JointState",
                              lambda m: events.append(("js", t.now_ns(), m)))
        t.create_subscription("/value", "std_msgs/msg/Float64MultiArray",
                              lambda m: events.append(("value", t.now_ns(), float(m.data[0]))))
        t.create_timer(0.1, lambda: events.append(("timer", t.now_ns(), None)))
        feed = t.feed_bag(reader, time_offset=0.0)
        assert feed.topics == ["/joint_states", "/value"] and feed.end_ns == T0 + 900_000_000
        t.run()
    kinds = [(k, (ns - T0) // 1_000_000) for k, ns, _ in events]
    # messages come before timers at the same instant: a tick sees every message stamped at or before it
    assert kinds[:7] == [("js", 0), ("js", 100), ("timer", 100), ("js", 200), ("timer", 200), ("value", 250),
                         ("js", 300)]  # fmt: skip
    joint_msgs = [m for k, _, m in events if k == "js"]
    assert len(joint_msgs) == 10 and all(type(m) is MESSAGE_TYPES["sensor_msgs/msg/JointState"] for m in joint_msgs)
    assert [list(m.position) for m in joint_msgs[:2]] == [[0.0, 0.0], [1.0, -1.0]] and joint_msgs[1].name == ["a",
                                                                                                              "b"]
    assert t.now_ns() == T0 + 900_000_000 and feed.exhausted and feed.delivered == 11
    stats = t.stats.as_dict()
    assert stats["bag_messages"] == 11 and "topic /joint_states" in stats["callback_s"] and stats["read_s"] >= 0


def test_feed_bag_topics_offsets_raw_and_errors(tmp_path):
    bag = make_bag(tmp_path / "bag")
    t = ReplayTransport("offset", start_time=0.0)
    raw: list[tuple[float, bytes]] = []
    t.create_subscription("/joint_states", "sensor_msgs/msg/JointState", lambda m: raw.append((t.now(), m)), raw=True)
    t.feed_bag(bag, topics=["/joint_states"], time_offset=-T0 / 1e9 + 5.0)  # a path: opened and closed here
    t.run()
    assert [round(s, 6) for s, _ in raw[:2]] == [5.0, 5.1] and t.now() == pytest.approx(5.9)
    with open_bag(bag) as reader:
        assert raw[0][1] == bytes(next(iter(reader.messages(["/joint_states"]))).rawdata)

    with pytest.raises(BagTopicError, match="'/nope'"):
        ReplayTransport("x").feed_bag(bag, topics=["/nope"])
    late = ReplayTransport("late", start_ns=T0 + 10**9)
    with pytest.raises(TransportError, match="before the replay clock.*time_offset"):
        late.feed_bag(bag)
    wrong = ReplayTransport("wrong")
    wrong.create_subscription("/value", "std_msgs/msg/Float64", lambda m: None)
    wrong.feed_bag(bag)
    with pytest.raises(TransportError, match=r"bag.*'/value' has type std_msgs/msg/Float64MultiArray in the bag.*"
                                             "std_msgs/msg/Float64"):
        wrong.run()


# -- without a bag: the fake robot and the policy node in one process -------------------------------------

class StepEngine(Engine):
    """A deterministic stand-in policy: each chunk step moves every joint 0.01 further than the state."""

    backend = "test"

    def __init__(self, spec: Any):
        self.horizon, self.action_dim = spec.action.horizon, spec.action.dim
        self.state_dim, self.num_views = spec.state_dim, spec.num_views
        self.images: list[tuple[int, ...]] = []

    def predict(self, images: np.ndarray, state: np.ndarray) -> np.ndarray:
        self.images.append(images.shape)
        steps = 0.01 * np.arange(1, self.horizon + 1, dtype=np.float32)[None, :, None]
        return (state[:, None, :] + steps).astype(np.float32)


def closed_loop(seconds: float) -> tuple[list[Published], Any, StepEngine]:
    from hpt_ros.nodes.fake_robot import FakeRobot
    from hpt_ros.nodes.policy_node import PolicyNode
    from hpt_ros.spec import load_spec

    spec = load_spec(ROOT / "config" / "robots" / "franka_fr3.yaml")
    world = ReplayTransport("fake_robot", {"width": 64, "height": 48, "camera_rate_hz": 15.0}, start_time=0.0,
                            record=[spec.action.command.topic, spec.action.gripper.topic])
    robot = FakeRobot(world, spec)
    engine = StepEngine(spec)
    PolicyNode(world.sibling("policy_node", {"auto_enable": True}), spec=spec, engine=engine)
    world.run(until=seconds)
    return world.published, robot, engine


def test_fake_robot_and_policy_node_run_in_process_on_simulated_time():
    published, robot, engine = closed_loop(2.0)
    commands = [p for p in published if p.topic == "/fr3_arm_controller/joint_trajectory"]
    assert len(commands) >= 25 and engine.images[0] == (1, 2, 48, 64, 3)
    assert all(p.time == pytest.approx(k / 15, abs=1e-6) for p in commands for k in [round(p.time * 15)])
    # the arm follows the commands: joint 1 moved from the ready pose toward the policy's targets
    last = commands[-1].msg.points[0].positions
    q = robot.sim.joint_positions()
    assert q[0] == pytest.approx(last[0], abs=0.05) and abs(q[0]) > 0.1
    again, _, _ = closed_loop(2.0)
    assert [(p.topic, p.time, p.msg) for p in again] == [(p.topic, p.time, p.msg) for p in published]
