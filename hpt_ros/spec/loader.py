"""Load and validate a robot spec YAML; every mistake names file, key path, expected, found."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Callable

import yaml

from .errors import SpecError
from .schema import (
    ACTION_KINDS,
    MEASURED_LATENCY,
    IMAGE_TYPES,
    STATE_TYPES,
    ActionSpec,
    CommandSpec,
    EngineSpec,
    ExecutionSpec,
    GripperSpec,
    JointLimit,
    KeepOutPlane,
    KinematicsSpec,
    ModelSpec,
    RobotSpec,
    SafetySpec,
    SensorSpec,
    StemSpec,
    WorkspaceSpec,
)

__all__ = ["load_spec", "parse_spec", "resolve_spec_path", "SUPPORTED_IMAGE_SIZES"]

# HPT's image stem is built for ResNet-18's 7x7 layer-4 grid (49 tokens per view).
SUPPORTED_IMAGE_SIZES = (224,)
_ENCODERS = ("resnet18",)
_MODALITIES = ("image", "state")
_MODES = ("temporal_ensemble", "replan")
_BACKENDS = ("torch", "onnxruntime")
_PRECISIONS = ("fp32", "bf16", "fp16")
_SIZES = ("tiny", "small", "base", "large", "xlarge")
_MISSING = object()


def _normalise_type(name: str) -> str:
    """'sensor_msgs/Image' -> 'sensor_msgs/msg/Image'."""
    parts = name.split("/")
    if len(parts) == 2:
        return f"{parts[0]}/msg/{parts[1]}"
    return name


class _Section:
    """A mapping being read; remembers its key path and refuses keys nobody read."""

    def __init__(self, file: str, path: str, data: Any):
        self.file = file
        self.path = path
        if not isinstance(data, dict):
            raise SpecError(file, path or "<top level>", "a mapping", data)
        self.data = data
        self.seen: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.path}.{name}" if self.path else name

    def fail(self, name: str, expected: str, found: object) -> SpecError:
        return SpecError(self.file, self.key(name), expected, found)

    def get(self, name: str, kind: type | tuple, default: Any = _MISSING, check: Callable[[Any], bool] | None = None,
            expected: str | None = None) -> Any:
        self.seen.add(name)
        if name not in self.data:
            if default is _MISSING:
                raise self.fail(name, f"a value ({expected or _kind_name(kind)})", "<missing>")
            return default
        value = self.data[name]
        if kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if isinstance(value, bool) and kind is not bool and not (isinstance(kind, tuple) and bool in kind):
            raise self.fail(name, expected or _kind_name(kind), value)
        if not isinstance(value, kind):
            raise self.fail(name, expected or _kind_name(kind), value)
        if isinstance(value, float) and not math.isfinite(value):
            raise self.fail(name, "a finite number", value)
        if check is not None and not check(value):
            raise self.fail(name, expected or "a valid value", value)
        return value

    def section(self, name: str, required: bool = True) -> "_Section | None":
        self.seen.add(name)
        if name not in self.data:
            if required:
                raise self.fail(name, "a mapping", "<missing>")
            return None
        return _Section(self.file, self.key(name), self.data[name])

    def string_list(self, name: str, default: Any = _MISSING) -> tuple[str, ...]:
        value = self.get(name, list, default)
        if value is default and default is not _MISSING:
            return tuple(value)
        for i, item in enumerate(value):
            if not isinstance(item, str) or not item:
                raise SpecError(self.file, f"{self.key(name)}[{i}]", "a non-empty string", item)
        seen: set[str] = set()
        for i, item in enumerate(value):
            if item in seen:
                raise SpecError(self.file, f"{self.key(name)}[{i}]", "each joint listed once", f"{item} listed twice")
            seen.add(item)
        return tuple(value)

    def done(self) -> None:
        unknown = sorted(set(self.data) - self.seen, key=str)
        if unknown:
            known = ", ".join(sorted(self.seen))
            raise SpecError(self.file, self.key(str(unknown[0])), f"one of the known keys ({known})", f"unknown key {unknown[0]!r}")


def _optional_ms(sec: _Section, name: str, *, positive: bool, word: str | None = None) -> float | str | None:
    """A duration in milliseconds that may be null (absent) or, where ``word`` is given, that word."""
    if sec.data.get(name) is None:
        sec.seen.add(name)
        return None
    if word is not None and sec.data[name] == word:
        sec.seen.add(name)
        return word
    bound, expected = (lambda v: v > 0, "milliseconds > 0") if positive else (lambda v: v >= 0, "milliseconds >= 0")
    if word is not None:
        expected += f", {word!r} or null"
    else:
        expected += " or null"
    return sec.get(name, float, check=bound, expected=expected)


def _kind_name(kind: type | tuple) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false", list: "a list", dict: "a mapping"}
    if isinstance(kind, tuple):
        return " or ".join(names.get(k, k.__name__) for k in kind)
    return names.get(kind, kind.__name__)


def _topic(section: _Section, name: str) -> str:
    from hpt_ros.msgs.errors import InvalidNameError
    from hpt_ros.msgs.names import validate_topic_name

    value = section.get(name, str)
    try:
        validate_topic_name(value)
    except InvalidNameError as exc:
        raise section.fail(name, "an absolute ROS 2 topic name like '/joint_states'", value) from exc
    return value


def _positive(x: float) -> bool:
    return x > 0


def parse_spec(data: Any, file: str = "<memory>") -> RobotSpec:
    """Validate a spec mapping (as read from YAML) and return the typed RobotSpec."""
    top = _Section(file, "", data)
    version = top.get("version", int, 1)
    if version != 1:
        raise top.fail("version", "1", version)

    robot = top.section("robot")
    name = robot.get("name", str)
    rate_hz = robot.get("rate_hz", float, expected="a number > 0", check=_positive)
    robot.done()

    # stems first, so sensors can be checked against them
    stems_sec = top.section("stems")
    stems: list[StemSpec] = []
    for stem_name in stems_sec.data:
        s = stems_sec.section(stem_name)
        modality = s.get("modality", str, check=lambda m: m in _MODALITIES, expected=f"one of {_MODALITIES}")
        if modality == "image":
            encoder = s.get("encoder", str, "resnet18", check=lambda e: e in _ENCODERS, expected=f"one of {_ENCODERS}")
            size = s.get("image_size", int, 224, check=lambda v: v in SUPPORTED_IMAGE_SIZES,
                         expected=f"an image size the {encoder} encoder can take for HPT's 49-token image stem: "
                         f"{SUPPORTED_IMAGE_SIZES}")
            views = s.get("views", int, check=_positive, expected="a number of views > 0")
            stems.append(StemSpec(stem_name, modality, encoder=encoder, image_size=size, views=views))
        else:
            dim = s.get("dim", int, check=_positive, expected="a state dimension > 0")
            stems.append(StemSpec(stem_name, modality, dim=dim))
        s.done()
    stem_by_name = {s.name: s for s in stems}
    modalities = [s.modality for s in stems]
    for modality in _MODALITIES:
        if modalities.count(modality) != 1:
            raise stems_sec.fail("<stems>", f"exactly one stem of modality {modality!r}", modalities)

    sensors_sec = top.section("sensors")
    sensors: list[SensorSpec] = []
    for sensor_name in sensors_sec.data:
        s = sensors_sec.section(sensor_name)
        topic = _topic(s, "topic")
        msg_type = _normalise_type(s.get("type", str))
        stem = s.get("stem", str)
        if stem not in stem_by_name:
            raise s.fail("stem", f"one of the stems defined under 'stems' ({', '.join(stem_by_name)})", stem)
        modality = stem_by_name[stem].modality
        max_age = s.get("max_age", float, expected="a maximum age in seconds > 0", check=_positive)
        required = s.get("required", bool, True)
        if modality == "image":
            if msg_type not in IMAGE_TYPES:
                raise s.fail("type", f"an image message type for image stem {stem!r}: {IMAGE_TYPES}", msg_type)
            view = s.get("view", int, check=lambda v: v >= 0, expected="a view index >= 0")
            sensors.append(SensorSpec(sensor_name, topic, msg_type, stem, max_age, view=view, required=required))
        else:
            if msg_type not in STATE_TYPES:
                raise s.fail("type", f"a joint state message type for state stem {stem!r}: {STATE_TYPES}", msg_type)
            fld = s.get("field", str, "position", check=lambda f: f in ("position", "velocity", "effort"),
                        expected="one of position, velocity, effort")
            joints = s.string_list("joints")
            if not joints:
                raise s.fail("joints", "at least one joint", joints)
            sensors.append(SensorSpec(sensor_name, topic, msg_type, stem, max_age, field=fld, joints=joints,
                                      required=required))
        s.done()

    # each stem fed, views complete and unique, state dims consistent
    for stem in stems:
        feeding = [s for s in sensors if s.stem == stem.name]
        if not feeding:
            raise SpecError(file, f"stems.{stem.name}", "a stem that at least one sensor maps to", "no sensor")
        if stem.modality == "image":
            views = sorted(s.view for s in feeding)
            if views != list(range(stem.views)):
                raise SpecError(file, f"sensors.*.view (stem {stem.name})",
                                f"views 0..{stem.views - 1}, one sensor each", views)
        else:
            joints = [j for s in feeding for j in s.joints]
            if len(joints) != stem.dim:
                raise SpecError(file, f"stems.{stem.name}.dim", f"the number of joints its sensors give ({len(joints)})",
                                stem.dim)
            if len(set(joints)) != len(joints):
                dup = next(j for j in joints if joints.count(j) > 1)
                raise SpecError(file, "sensors.*.joints", "each joint listed once", f"{dup} listed twice")
    topics = [s.topic for s in sensors]
    for s in sensors:
        if topics.count(s.topic) > 1:
            raise SpecError(file, f"sensors.{s.name}.topic", "a topic used by one sensor only", s.topic)

    action = _parse_action(top.section("action"), file)

    limits_sec = top.section("limits")
    limits: dict[str, JointLimit] = {}
    for joint in limits_sec.data:
        l_sec = limits_sec.section(joint)
        lower = l_sec.get("lower", float)
        upper = l_sec.get("upper", float)
        if not lower < upper:
            raise l_sec.fail("upper", f"a limit above lower ({lower})", upper)
        velocity = l_sec.get("velocity", float, check=_positive, expected="a velocity limit > 0")
        l_sec.done()
        limits[joint] = JointLimit(lower, upper, velocity)
    if action.kind == "joint_position":
        for joint in action.joints:
            if joint not in limits:
                raise SpecError(file, f"limits.{joint}", "limits for every action joint", "<missing>")

    safety_sec = top.section("safety", required=False)
    safety = SafetySpec()
    if safety_sec is not None:
        safety = SafetySpec(
            enable_topic=_topic(safety_sec, "enable_topic") if "enable_topic" in safety_sec.data else safety.enable_topic,
            require_enable=safety_sec.get("require_enable", bool, True),
            max_velocity_fraction=safety_sec.get("max_velocity_fraction", float, 0.5,
                                                 check=lambda f: 0 < f <= 1, expected="a fraction in (0, 1]"),
        )
        safety_sec.done()

    exec_sec = top.section("execution", required=False)
    execution = ExecutionSpec()
    if exec_sec is not None:
        execution = ExecutionSpec(
            mode=exec_sec.get("mode", str, "temporal_ensemble", check=lambda m: m in _MODES, expected=f"one of {_MODES}"),
            ensemble_coefficient=exec_sec.get("ensemble_coefficient", float, 0.01, check=lambda c: c >= 0,
                                              expected="a coefficient >= 0"),
            replan_every=exec_sec.get("replan_every", int, 4,
                                      check=lambda k: 1 <= k <= action.horizon,
                                      expected=f"an integer in 1..{action.horizon} (the action horizon)"),
            asynchronous=exec_sec.get("async", bool, False),
            deadline_ms=_optional_ms(exec_sec, "deadline_ms", positive=True),
            max_deadline_misses=exec_sec.get("max_deadline_misses", int, 3, check=lambda n: n >= 1,
                                             expected="an integer >= 1"),
            inference_latency_ms=_optional_ms(exec_sec, "inference_latency_ms", positive=False,
                                              word=MEASURED_LATENCY),
        )
        exec_sec.done()

    engine_sec = top.section("engine", required=False)
    engine = EngineSpec()
    if engine_sec is not None:
        engine = EngineSpec(
            backend=engine_sec.get("backend", str, "torch", check=lambda b: b in _BACKENDS, expected=f"one of {_BACKENDS}"),
            precision=engine_sec.get("precision", str, "fp32", check=lambda p: p in _PRECISIONS,
                                     expected=f"one of {_PRECISIONS}"),
        )
        engine_sec.done()

    model_sec = top.section("model", required=False)
    model = ModelSpec()
    if model_sec is not None:
        model = ModelSpec(
            size=model_sec.get("size", str, "small", check=lambda s: s in _SIZES, expected=f"one of {_SIZES}"),
            path=model_sec.get("path", str, ""),
        )
        model_sec.done()
    state_joints = tuple(j for s in sensors if stem_by_name[s.stem].modality == "state" for j in s.joints)
    workspace = _parse_workspace(top.section("workspace", required=False), file, action, state_joints)
    top.done()

    state_stem = next(s for s in stems if s.modality == "state")
    del state_stem  # dims checked above
    return RobotSpec(
        name=name,
        rate_hz=rate_hz,
        sensors=tuple(sensors),
        stems=tuple(stems),
        action=action,
        limits=limits,
        safety=safety,
        execution=execution,
        engine=engine,
        model=model,
        workspace=workspace,
        source=file,
        raw=data,
    )


def _parse_action(a: _Section, file: str) -> ActionSpec:
    kind = a.get("kind", str, check=lambda k: k in ACTION_KINDS, expected=f"one of {tuple(ACTION_KINDS)}")
    horizon = a.get("horizon", int, 8, check=_positive, expected="an action horizon > 0")
    command_types, _ = ACTION_KINDS[kind]
    c = a.section("command")
    command_type = _normalise_type(c.get("type", str))
    if command_type not in command_types:
        raise c.fail("type", f"a command type for action kind {kind!r}: {command_types}", command_type)
    command = CommandSpec(_topic(c, "topic"), command_type)
    c.done()
    g = a.section("gripper", required=False)
    gripper = None
    if g is not None:
        g_type = _normalise_type(g.get("type", str, "std_msgs/msg/Float64MultiArray"))
        if g_type not in ("std_msgs/msg/Float64MultiArray", "sensor_msgs/msg/JointState"):
            raise g.fail("type", "std_msgs/msg/Float64MultiArray or sensor_msgs/msg/JointState", g_type)
        gripper = GripperSpec(g.get("joint", str), _topic(g, "topic"), g_type)
        g.done()
    frame = a.get("frame", str, "")
    if kind == "joint_position":
        joints = a.string_list("joints")
        if not joints:
            raise a.fail("joints", "at least one joint", joints)
        if gripper is not None and gripper.joint not in joints:
            raise a.fail("gripper.joint", f"one of action.joints ({', '.join(joints)})", gripper.joint)
    else:
        if not frame:
            raise a.fail("frame", f"a frame id for action kind {kind!r}", frame)
        joints = a.string_list("joints", ())
        if gripper is not None:
            joints = (gripper.joint,)
    time_from_start = a.get("time_from_start", float, 0.0, check=lambda t: t >= 0, expected="seconds >= 0")
    a.done()
    return ActionSpec(kind=kind, horizon=horizon, joints=joints, command=command, frame=frame, gripper=gripper,
                      time_from_start=time_from_start)


def _vector(section: _Section, name: str, size: int, default: Any = _MISSING) -> tuple[float, ...]:
    value = section.get(name, list, default, expected=f"a list of {size} numbers")
    if value is default and default is not _MISSING:
        return tuple(value)
    ok = len(value) == size and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)
                                    for v in value)
    if not ok:
        raise section.fail(name, f"a list of {size} finite numbers", value)
    return tuple(float(v) for v in value)


def _parse_workspace(w: _Section | None, file: str, action: ActionSpec,
                     state_joints: tuple[str, ...]) -> WorkspaceSpec | None:
    if w is None:
        return None
    box_min = box_max = None
    box = w.section("box", required=False)
    if box is not None:
        box_min, box_max = _vector(box, "min", 3), _vector(box, "max", 3)
        for axis, lo, hi in zip("xyz", box_min, box_max):
            if not lo < hi:
                raise box.fail("max", f"each bound above min ({axis}: {lo} < max)", list(box_max))
        box.done()
    planes: list[KeepOutPlane] = []
    keep_out = w.section("keep_out", required=False)
    if keep_out is not None:
        for name in keep_out.data:
            p = keep_out.section(str(name))
            normal = _vector(p, "normal", 3)
            length = math.sqrt(sum(v * v for v in normal))
            if length < 1e-9:
                raise p.fail("normal", "a non-zero normal (pointing to the allowed side)", list(normal))
            planes.append(KeepOutPlane(str(name), tuple(v / length for v in normal), p.get("offset", float, 0.0),
                                       p.get("clearance", float, 0.0, check=lambda c: c >= 0,
                                             expected="a clearance >= 0 [m]")))  # fmt: skip
            p.done()
    kinematics = None
    k = w.section("kinematics", required=False)
    if k is not None:
        joints = k.string_list("joints")
        rows = k.get("dh", list, expected="a list of [a, d, alpha] rows")
        for i, row in enumerate(rows):
            if not (isinstance(row, list) and len(row) == 3 and all(
                    isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in row)):
                raise SpecError(file, f"{k.key('dh')}[{i}]", "[a, d, alpha]: three finite numbers", row)
        if not joints or len(rows) < len(joints):
            raise k.fail("dh", f"at least one row per joint ({len(joints)})", f"{len(rows)} rows")
        tool = k.section("tool", required=False)
        xyz, rpy = (0.0, 0.0, 0.0), (0.0, 0.0, 0.0)
        if tool is not None:
            xyz, rpy = _vector(tool, "xyz", 3, (0.0, 0.0, 0.0)), _vector(tool, "rpy", 3, (0.0, 0.0, 0.0))
            tool.done()
        k.done()
        # joint commands are checked on the commanded joints, end-effector ones on the measured joints
        needed_in, where = ((action.joints, "action.joints") if action.kind == "joint_position"
                            else (state_joints, "the state sensors' joints"))
        for i, joint in enumerate(joints):
            if joint not in needed_in:
                raise SpecError(file, f"{k.key('joints')}[{i}]", f"a joint of {where}", joint)
        kinematics = KinematicsSpec(joints, tuple(tuple(float(v) for v in r) for r in rows), xyz, rpy)
    w.done()
    if box_min is None and not planes:
        raise w.fail("box", "a box or at least one keep_out plane", "neither")
    if kinematics is None and action.kind in ("joint_position", "ee_twist"):
        raise w.fail("kinematics", f"kinematics: {action.kind} commands are checked against the workspace "
                     "through the TCP position computed from joint positions", "<missing>")
    return WorkspaceSpec(box_min, box_max, tuple(planes), kinematics)  # type: ignore[arg-type]


def resolve_spec_path(path: str | os.PathLike) -> Path:
    """A file path, or the name of a spec shipped in config/robots ('franka_fr3')."""
    p = Path(path)
    if p.is_file():
        return p
    from hpt_ros.resources import config_dir

    shipped = config_dir() / "robots" / f"{p.stem if p.suffix else p.name}.yaml"
    if shipped.is_file() and (p.suffix in ("", ".yaml") and p.parent == Path(".")):
        return shipped
    raise SpecError(str(path), "<file>", "an existing robot spec YAML file (or a shipped name like 'franka_fr3')",
                    "no such file")


def load_spec(path: str | os.PathLike) -> RobotSpec:
    """Read a robot spec YAML (safe_load) and validate it."""
    file = resolve_spec_path(path)
    try:
        text = file.read_text()
    except OSError as exc:
        raise SpecError(str(file), "<file>", "a readable file", str(exc)) from exc
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"line {mark.line + 1}, column {mark.column + 1}" if mark else "<file>"
        raise SpecError(str(file), where, "valid YAML", getattr(exc, "problem", str(exc))) from exc
    return parse_spec(data, str(file))
