"""policy_node: cameras + joint states -> HPT (stem -> trunk -> head) -> safe commands at the control rate.

    ros2 run hpt_ros policy_node --ros-args -p robot_config:=franka_fr3 -p model:=/path/to/checkpoint
    hpt-ros policy --robot franka_fr3 --model /path/to/checkpoint        # pure pip, over DDS
    hpt-ros policy ... --view                                            # and a live view in Foxglove

Parameters: ``robot_config`` (a spec path or a shipped name), ``model`` (checkpoint dir
or ``.onnx``; empty: the package's default model), ``rate_hz`` (0 keeps the spec's),
``engine`` / ``precision`` (empty keep the spec's), ``auto_enable`` (start enabled, for
demos and tests: the enable topic still gates motion afterwards), ``allow_spec_mismatch``
(run a model made for a spec with other joints, views or action layout; warned at
every start).

Threads: message callbacks only convert and store the latest value per sensor; the
control timer (its own callback group / thread) builds the observation and runs
inference (synchronous execution) or hands it to the runtime's worker thread
(``execution.async: true``), so a slow step never blocks a camera or joint-state callback.

On the replay transport (a simulated clock) the runtime schedules inference on that clock
(``PolicyRuntime(simulated_clock=True)``): with ``execution.inference_latency_ms``, a
synchronous tick's command is sent that long after its observation by a one-shot timer,
and the control ticks that fall meanwhile are skipped, as they are for a loop blocked in
inference.
"""

from __future__ import annotations

import argparse
import logging
import math
from typing import Any

import numpy as np

from hpt_ros.msgs import messages
from hpt_ros.nodes.runner import as_bool, run_node
from hpt_ros.ros.transport import QOS_DEFAULT, QOS_SENSOR_DATA, Transport
from hpt_ros.runtime import CLOCK_TOLERANCE_S, PolicyRuntime, SensorDataError, TickResult
from hpt_ros.spec import RobotSpec, load_spec
from hpt_ros.view.options import add_view_arguments, view_options

__all__ = ["PolicyNode", "cli", "main", "DIAGNOSTICS_TOPIC", "PREDICTED_CHUNK_TOPIC"]

DIAGNOSTICS_TOPIC = "/diagnostics"
#: every chunk the engine predicts (std_msgs/Float64MultiArray, layout [horizon, action joint]), for viewers
PREDICTED_CHUNK_TOPIC = "/hpt/predicted_chunk"
_LEVEL_OK, _LEVEL_WARN, _LEVEL_ERROR = 0, 1, 2


class PolicyNode:
    """The policy node, written against the transport interface only."""

    def __init__(self, transport: Transport, spec: RobotSpec | None = None, engine: Any = None):
        self.transport = transport
        log = self.log = transport.logger
        # -- parameters ------------------------------------------------------
        robot_config = transport.declare_parameter("robot_config", "franka_fr3", "robot spec YAML or shipped name")
        model = str(transport.declare_parameter("model", "", "checkpoint dir or .onnx; empty: default model") or "")
        rate_hz = float(transport.declare_parameter("rate_hz", 0.0, "control rate [Hz]; 0 keeps the spec's") or 0.0)
        backend = str(transport.declare_parameter("engine", "", "torch | onnxruntime; empty keeps the spec's") or "")
        precision = str(transport.declare_parameter("precision", "", "fp32 | bf16 | fp16; empty keeps the spec's")
                        or "")
        auto_enable = as_bool(transport.declare_parameter("auto_enable", False, "start with motion enabled"))
        allow_mismatch = as_bool(transport.declare_parameter(
            "allow_spec_mismatch", False, "run a model made for a robot spec with other joints, views or actions"))
        spec = spec if spec is not None else load_spec(robot_config)
        if rate_hz > 0:
            spec = _with_rate(spec, rate_hz)
        self.spec = spec
        if engine is None:
            engine = _load_engine(model, spec, backend or None, precision or None, log, allow_mismatch)
        self.runtime = PolicyRuntime(spec, engine, simulated_clock=transport.kind == "replay")
        self._blocked_until: float | None = None  # a synchronous inference's end on a simulated clock
        action = spec.action

        # -- publishers --------------------------------------------------------
        self._command_pub = transport.create_publisher(action.command.topic, action.command.type, QOS_DEFAULT)
        self._gripper_pub = (
            transport.create_publisher(action.gripper.topic, action.gripper.type, QOS_DEFAULT) if action.gripper else None
        )
        self._diagnostics_pub = transport.create_publisher(DIAGNOSTICS_TOPIC, "diagnostic_msgs/msg/DiagnosticArray")
        self._chunk_pub = transport.create_publisher(PREDICTED_CHUNK_TOPIC, "std_msgs/msg/Float64MultiArray")
        self._chunk_columns = ",".join(action.joints)  # the chunk's columns, named for viewers
        self._arm_index = np.array([action.joints.index(j) for j in action.arm_joints], dtype=np.intp)
        self._gripper_index = action.joints.index(action.gripper.joint) if action.gripper else None

        # -- subscriptions -------------------------------------------------------
        self._conversion_errors: dict[str, str] = {}
        self._received = dict.fromkeys((s.name for s in spec.sensors), 0)  # messages taken, per sensor
        for sensor in spec.sensors:
            qos = QOS_SENSOR_DATA if sensor.is_image else QOS_DEFAULT
            transport.create_subscription(sensor.topic, sensor.type, self._sensor_callback(sensor), qos)
        transport.create_subscription(spec.safety.enable_topic, "std_msgs/msg/Bool", self._on_enable, QOS_DEFAULT)
        if auto_enable or not spec.safety.require_enable:
            self.runtime.set_enabled(True, transport.now())

        # -- timers ----------------------------------------------------------------
        transport.create_timer(spec.period_s, self._on_control_tick, group="control")
        transport.create_timer(1.0, self._publish_diagnostics, group="diagnostics")
        self.last_result: TickResult | None = None
        log.info("policy node ready: %s at %g Hz, engine %s", spec.name, spec.rate_hz,
                 engine.describe() if engine is not None else "none (holding)")

    # -- callbacks -------------------------------------------------------------------
    def _sensor_callback(self, sensor):
        transport, cache, name, topic = self.transport, self.runtime.cache, sensor.name, sensor.topic
        received = self._received
        if sensor.is_image:
            convert = messages.compressed_image_to_rgb if sensor.type.endswith("CompressedImage") else messages.image_to_rgb

            def on_image(msg: Any) -> None:
                try:
                    cache.update(name, convert(msg, topic=topic), transport.now())
                    received[name] += 1
                except (messages.MessageConversionError, SensorDataError) as exc:
                    self._conversion_error(topic, exc)

            return on_image
        joints, fld = sensor.joints, sensor.field

        def on_joint_state(msg: Any) -> None:
            try:
                values = messages.joint_state_to_array(msg, joints, field=fld, topic=topic)
                cache.update(name, values, transport.now())
                received[name] += 1
            except (messages.MessageConversionError, SensorDataError) as exc:
                self._conversion_error(topic, exc)

        return on_joint_state

    def _conversion_error(self, topic: str, exc: Exception) -> None:
        # once per distinct message per topic: a bad stream must not flood the log
        text = str(exc)
        if self._conversion_errors.get(topic) != text:
            self._conversion_errors[topic] = text
            self.log.error("%s", text)

    def _on_enable(self, msg: Any) -> None:
        self.runtime.set_enabled(bool(msg.data), self.transport.now())

    def _on_control_tick(self) -> None:
        now = self.transport.now()
        if self._blocked_until is not None and now < self._blocked_until - CLOCK_TOLERANCE_S:
            return  # still inside the previous tick's (simulated) inference: this tick is skipped
        result = self.runtime.tick(now)
        if result.send_delay_s > 0:
            self._blocked_until = now + result.send_delay_s
            self._after(result.send_delay_s, lambda: self._send(result, self.transport.now()))
        else:
            self._send(result, result.time)

    def _after(self, delay_s: float, callback) -> None:
        """Run ``callback`` once, ``delay_s`` from now on the transport's clock."""
        def fire() -> None:
            timer.cancel()
            callback()

        timer = self.transport.create_timer(delay_s, fire, group="control")

    def _send(self, result: TickResult, stamp: float) -> None:
        self.last_result = result
        if result.command is not None:
            self._publish_command(result.command, stamp)
        if result.predicted is not None and np.isfinite(result.predicted).all():
            chunk = self.transport.new_message("std_msgs/msg/Float64MultiArray")
            horizon, width = result.predicted.shape
            label = self._chunk_columns if len(self.spec.action.joints) == width else "action"
            messages.fill_float64_multi_array(chunk, result.predicted, topic=PREDICTED_CHUNK_TOPIC,
                                              dims=[("horizon", horizon), (label, width)])
            self._chunk_pub.publish(chunk)

    def _publish_command(self, command: np.ndarray, stamp: float) -> None:
        spec, action, transport = self.spec, self.spec.action, self.transport
        msg = transport.new_message(action.command.type)
        topic = action.command.topic
        if action.kind == "joint_position":
            arm = command[self._arm_index]
            if action.command.type.endswith("JointTrajectory"):
                reach = action.time_from_start or spec.period_s
                messages.fill_joint_trajectory(msg, action.arm_joints, arm, stamp, reach, topic=topic)
            elif action.command.type.endswith("Float64MultiArray"):
                messages.fill_float64_multi_array(msg, arm, topic=topic)
            else:
                messages.fill_joint_state(msg, action.arm_joints, arm, stamp_s=stamp, topic=topic)
        elif action.kind == "ee_pose":
            xyz, rpy = command[:3], command[3:6]
            messages.fill_pose_stamped(msg, xyz, _rpy_to_quaternion(rpy), action.frame, stamp, topic=topic)
        else:
            messages.fill_twist_stamped(msg, command[:3], command[3:6], action.frame, stamp, topic=topic)
        self._command_pub.publish(msg)
        if self._gripper_pub is not None and action.gripper is not None:
            gripper_value = float(command[self._gripper_index if action.kind == "joint_position" else 6])
            g = transport.new_message(action.gripper.type)
            if action.gripper.type.endswith("Float64MultiArray"):
                messages.fill_float64_multi_array(g, [gripper_value], topic=action.gripper.topic)
            else:
                messages.fill_joint_state(g, [action.gripper.joint], [gripper_value], stamp_s=stamp,
                                          topic=action.gripper.topic)
            self._gripper_pub.publish(g)

    def close(self) -> None:
        """Stop the runtime's inference worker."""
        self.runtime.close()

    def _publish_diagnostics(self) -> None:
        now = self.transport.now()
        stats = self.runtime.stats()
        ages = self.runtime.cache.ages(now)
        level = _LEVEL_OK if not stats.reason else (_LEVEL_WARN if stats.reason == "disabled" else _LEVEL_ERROR)
        values = {
            "rate_hz": _fmt(stats.rate_hz),
            "target_rate_hz": _fmt(self.spec.rate_hz),
            "inference_p50_ms": _fmt(None if stats.latency_p50_s is None else stats.latency_p50_s * 1e3),
            "inference_p99_ms": _fmt(None if stats.latency_p99_s is None else stats.latency_p99_s * 1e3),
            "safety_state": stats.reason or "commanding",
            "ticks": str(stats.ticks),
            "commands": str(stats.commands),
            "held_ticks": str(stats.holds),
            "hold_events": str(stats.hold_events),
            "inference_failures": str(stats.inference_failures),
            "execution": "asynchronous" if self.runtime.asynchronous else "synchronous",
            "deadline_misses": str(stats.deadline_misses),
            "deadline_misses_in_a_row": str(stats.deadline_misses_in_a_row),
            "dropped_chunk_steps": str(stats.dropped_steps),
        }
        for sensor, age in ages.items():
            values[f"age_{sensor}_s"] = _fmt(age)
        for sensor, count in self._received.items():  # a rate over a window: the difference of two reports
            values[f"received_{sensor}"] = str(count)
        comparison = getattr(self.runtime.engine, "spec_comparison", None)
        if comparison is not None and comparison.differences:  # run with allow_spec_mismatch
            values["spec_mismatch"] = "; ".join(comparison.differences)
            level = max(level, _LEVEL_WARN)
        msg = self.transport.new_message("diagnostic_msgs/msg/DiagnosticArray")
        status = (f"{self.transport.node_name}: policy", level, stats.reason or "commanding", self.spec.name, values)
        messages.fill_diagnostic_array(msg, [status], now)
        self._diagnostics_pub.publish(msg)


# -- helpers ---------------------------------------------------------------------------

def _fmt(value: float | None) -> str:
    if value is None:
        return "n/a"
    if not math.isfinite(value):
        return "never" if value > 0 else "n/a"
    return f"{value:.4g}"



def _with_rate(spec: RobotSpec, rate_hz: float) -> RobotSpec:
    import dataclasses

    raw = dict(spec.raw)
    raw["robot"] = dict(raw.get("robot", {}), rate_hz=rate_hz)
    return dataclasses.replace(spec, rate_hz=rate_hz, raw=raw)


def _rpy_to_quaternion(rpy: np.ndarray) -> np.ndarray:
    roll, pitch, yaw = (float(v) / 2 for v in rpy)
    cr, sr, cp, sp, cy, sy = math.cos(roll), math.sin(roll), math.cos(pitch), math.sin(pitch), math.cos(yaw), math.sin(yaw)
    return np.array([sr * cp * cy - cr * sp * sy, cr * sp * cy + sr * cp * sy,
                     cr * cp * sy - sr * sp * cy, cr * cp * cy + sr * sp * sy])


def _load_engine(model: str, spec: RobotSpec, backend: str | None, precision: str | None, log: logging.Logger,
                 allow_spec_mismatch: bool = False):
    from hpt_ros.engine.factory import load_engine

    engine = load_engine(model or None, spec, backend=backend, precision=precision,
                         allow_spec_mismatch=allow_spec_mismatch)
    engine.warmup(iterations=2)
    return engine


# -- entry points ----------------------------------------------------------------------

def main(args: list[str] | None = None) -> None:
    """``ros2 run hpt_ros policy_node`` (rclpy transport)."""
    run_node(PolicyNode, "rclpy", "policy_node", args=args)


def build_arg_parser(prog: str = "hpt-ros policy") -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Run the HPT policy node over DDS (no ROS 2 install).")
    parser.add_argument("--robot", default="franka_fr3", help="robot spec YAML or shipped name (default franka_fr3)")
    parser.add_argument("--model", default="", help="checkpoint dir or .onnx (default: the package's model)")
    parser.add_argument("--engine", default="", choices=["", "torch", "onnxruntime"])
    parser.add_argument("--precision", default="", choices=["", "fp32", "bf16", "fp16"])
    parser.add_argument("--rate-hz", type=float, default=0.0, help="control rate (default: the spec's)")
    parser.add_argument("--enable", action="store_true", help="start with motion enabled")
    parser.add_argument("--allow-spec-mismatch", action="store_true",
                        help="run a model made for a robot spec with other joints, views or action layout")
    parser.add_argument("--duration", type=float, default=None, help="stop after this many seconds")
    add_view_arguments(parser)
    return parser


def cli(argv: list[str], prog: str = "hpt-ros policy") -> int:
    """``hpt-ros policy`` (dds transport)."""
    args = build_arg_parser(prog).parse_args(argv)
    parameters = {"robot_config": args.robot, "model": args.model, "engine": args.engine,
                  "precision": args.precision, "rate_hz": args.rate_hz, "auto_enable": args.enable,
                  "allow_spec_mismatch": args.allow_spec_mismatch}
    return run_node(PolicyNode, "dds", "policy_node", parameters=parameters, duration_s=args.duration,
                    view=view_options(args))
