"""The robot spec: which sensor feeds which stem, what the head commands, and the limits.

The YAML layout is documented in ``config/robots/README.md``; this module holds the
validated, typed form. Every field here has been checked by ``hpt_ros.spec.loader``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "ACTION_KINDS",
    "IMAGE_TYPES",
    "STATE_TYPES",
    "ActionSpec",
    "CommandSpec",
    "EngineSpec",
    "ExecutionSpec",
    "MEASURED_LATENCY",
    "GripperSpec",
    "JointLimit",
    "KeepOutPlane",
    "KinematicsSpec",
    "ModelSpec",
    "RobotSpec",
    "SafetySpec",
    "SensorSpec",
    "StemSpec",
    "WorkspaceSpec",
]

IMAGE_TYPES = ("sensor_msgs/msg/Image", "sensor_msgs/msg/CompressedImage")
STATE_TYPES = ("sensor_msgs/msg/JointState",)

#: action kind -> (allowed command message types, number of dims apart from the gripper)
ACTION_KINDS: dict[str, tuple[tuple[str, ...], int | None]] = {
    # absolute joint position targets, one per joint in action.joints
    "joint_position": (
        (
            "trajectory_msgs/msg/JointTrajectory",
            "std_msgs/msg/Float64MultiArray",
            "sensor_msgs/msg/JointState",
        ),
        None,
    ),
    # end-effector pose: x y z [m], roll pitch yaw [rad] in action.frame
    "ee_pose": (("geometry_msgs/msg/PoseStamped",), 6),
    # end-effector twist: vx vy vz [m/s], wx wy wz [rad/s] in action.frame
    "ee_twist": (("geometry_msgs/msg/TwistStamped",), 6),
}


@dataclass(frozen=True)
class SensorSpec:
    name: str
    topic: str
    type: str
    stem: str
    max_age: float
    view: int | None = None  # image sensors: index of the view in the image stem
    field: str = "position"  # JointState sensors: which array to read
    joints: tuple[str, ...] = ()  # JointState sensors: the order the stem sees
    required: bool = True

    @property
    def is_image(self) -> bool:
        return self.type in IMAGE_TYPES


@dataclass(frozen=True)
class StemSpec:
    name: str
    modality: str  # "image" | "state"
    encoder: str = "resnet18"
    image_size: int = 224
    views: int = 0
    dim: int = 0


@dataclass(frozen=True)
class CommandSpec:
    topic: str
    type: str


@dataclass(frozen=True)
class GripperSpec:
    joint: str
    topic: str
    type: str


@dataclass(frozen=True)
class ActionSpec:
    kind: str
    horizon: int
    joints: tuple[str, ...]  # the action vector's layout (joint kinds), gripper joint last
    command: CommandSpec
    frame: str = ""
    gripper: GripperSpec | None = None
    time_from_start: float = 0.0  # JointTrajectory: seconds to reach each target; 0 = one control period

    @property
    def dim(self) -> int:
        if self.kind == "joint_position":
            return len(self.joints)
        return 6 + (1 if self.gripper else 0)

    @property
    def arm_joints(self) -> tuple[str, ...]:
        """Joints the arm command carries (the gripper joint goes on its own topic)."""
        if self.gripper is None:
            return self.joints
        return tuple(j for j in self.joints if j != self.gripper.joint)


@dataclass(frozen=True)
class JointLimit:
    lower: float
    upper: float
    velocity: float


@dataclass(frozen=True)
class SafetySpec:
    enable_topic: str = "/hpt/enable"
    require_enable: bool = True
    #: fraction of each joint's velocity limit that one tick may use
    max_velocity_fraction: float = 0.5


@dataclass(frozen=True)
class KeepOutPlane:
    """A plane the TCP stays on the positive side of: ``normal . p >= offset + clearance``."""

    name: str
    normal: tuple[float, float, float]  # unit length (the loader normalises it)
    offset: float
    clearance: float = 0.0

    @property
    def bound(self) -> float:
        return self.offset + self.clearance


@dataclass(frozen=True)
class KinematicsSpec:
    """Modified DH rows (a, d, alpha); the first ``len(joints)`` turn with those joints, the rest are fixed."""

    joints: tuple[str, ...]
    dh: tuple[tuple[float, float, float], ...]
    tool_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    tool_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)


@dataclass(frozen=True)
class WorkspaceSpec:
    """Where the TCP may go, in the base frame of ``kinematics`` (the frame of ee commands)."""

    box_min: tuple[float, float, float] | None = None
    box_max: tuple[float, float, float] | None = None
    keep_out: tuple[KeepOutPlane, ...] = ()
    kinematics: KinematicsSpec | None = None


#: ``execution.inference_latency_ms`` value: each inference's own wall time becomes its simulated latency
MEASURED_LATENCY = "measured"


@dataclass(frozen=True)
class ExecutionSpec:
    """How chunks become commands, and when inference runs (YAML section ``execution``).

    ``asynchronous`` (YAML key ``async``): inference runs beside the control tick, which
    commands from the chunks in hand. ``deadline_ms``: an inference slower than this is a
    deadline miss (None: no deadline); ``max_deadline_misses`` in a row hold the robot
    until one is on time again. ``inference_latency_ms``: on a simulated clock, the time
    an inference takes on that clock (None: none; ``MEASURED_LATENCY``: its wall time); on
    a live clock, the least time an inference takes (a slower model, emulated).
    """

    mode: str = "temporal_ensemble"  # "temporal_ensemble" | "replan"
    ensemble_coefficient: float = 0.01  # ACT: w_i = exp(-m * i), i = 0 the oldest chunk
    replan_every: int = 4
    asynchronous: bool = False
    deadline_ms: float | None = None
    max_deadline_misses: int = 3
    inference_latency_ms: float | str | None = None


@dataclass(frozen=True)
class EngineSpec:
    backend: str = "torch"  # "torch" | "onnxruntime"
    precision: str = "fp32"  # "fp32" | "bf16" | "fp16"


@dataclass(frozen=True)
class ModelSpec:
    size: str = "small"
    path: str = ""


@dataclass(frozen=True)
class RobotSpec:
    name: str
    rate_hz: float
    sensors: tuple[SensorSpec, ...]
    stems: tuple[StemSpec, ...]
    action: ActionSpec
    limits: dict[str, JointLimit]
    safety: SafetySpec = field(default_factory=SafetySpec)
    execution: ExecutionSpec = field(default_factory=ExecutionSpec)
    engine: EngineSpec = field(default_factory=EngineSpec)
    model: ModelSpec = field(default_factory=ModelSpec)
    workspace: WorkspaceSpec | None = None
    source: str = "<memory>"
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    # -- derived views -----------------------------------------------------
    @property
    def image_sensors(self) -> tuple[SensorSpec, ...]:
        """Image sensors in view order."""
        return tuple(sorted((s for s in self.sensors if s.is_image), key=lambda s: s.view or 0))

    @property
    def state_sensors(self) -> tuple[SensorSpec, ...]:
        return tuple(s for s in self.sensors if not s.is_image)

    @property
    def state_joints(self) -> tuple[str, ...]:
        return tuple(j for s in self.state_sensors for j in s.joints)

    @property
    def state_dim(self) -> int:
        return len(self.state_joints)

    @property
    def num_views(self) -> int:
        return len(self.image_sensors)

    @property
    def image_size(self) -> int:
        for stem in self.stems:
            if stem.modality == "image":
                return stem.image_size
        return 224

    @property
    def period_s(self) -> float:
        return 1.0 / self.rate_hz

    def joint_limits_arrays(self, joints: tuple[str, ...]):
        """(lower, upper, velocity) float64 arrays for ``joints`` in that order."""
        import numpy as np

        lower = np.array([self.limits[j].lower for j in joints], dtype=np.float64)
        upper = np.array([self.limits[j].upper for j in joints], dtype=np.float64)
        velocity = np.array([self.limits[j].velocity for j in joints], dtype=np.float64)
        return lower, upper, velocity

    @property
    def spec_hash(self) -> str:
        """sha256 of the canonical validated content (file paths and comments excluded)."""
        text = json.dumps(self.raw, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()

    def summary(self) -> str:
        lines = [f"robot {self.name!r} from {self.source}", f"  control rate {self.rate_hz:g} Hz"]
        for s in self.sensors:
            where = f"view {s.view}" if s.is_image else f"{len(s.joints)} joints ({s.field})"
            lines.append(f"  sensor {s.name}: {s.topic} [{s.type}] -> stem {s.stem} {where}, max_age {s.max_age:g} s")
        a = self.action
        lines.append(
            f"  action {a.kind}: dim {a.dim} x horizon {a.horizon} -> {a.command.topic} [{a.command.type}]"
        )
        if a.gripper:
            lines.append(f"  gripper {a.gripper.joint} -> {a.gripper.topic} [{a.gripper.type}]")
        e = self.execution
        lines.append(
            f"  execution {e.mode}"
            + (f" (coefficient {e.ensemble_coefficient:g})" if e.mode == "temporal_ensemble" else f" (every {e.replan_every})")
            + (", asynchronous" if e.asynchronous else ", synchronous")
            + (f", deadline {e.deadline_ms:g} ms ({e.max_deadline_misses} misses in a row hold)"
               if e.deadline_ms else "")
        )
        if e.inference_latency_ms is not None:
            unit = "" if e.inference_latency_ms == MEASURED_LATENCY else " ms"
            lines.append(f"  inference latency {e.inference_latency_ms}{unit} (simulated clock) / at least (live)")
        lines.append(f"  engine {self.engine.backend} {self.engine.precision}; model size {self.model.size}")
        lines.append(f"  enable topic {self.safety.enable_topic} (required: {self.safety.require_enable})")
        w = self.workspace
        if w is not None:
            box = f"box {list(w.box_min)}..{list(w.box_max)} m" if w.box_min is not None else "no box"
            planes = ", ".join(p.name for p in w.keep_out) or "no keep-out planes"
            kin = f"kinematics {len(w.kinematics.joints)} joints" if w.kinematics else "no kinematics"
            lines.append(f"  workspace {box}; keep out: {planes}; {kin}")
        lines.append(f"  spec hash {self.spec_hash[:16]}")
        return "\n".join(lines)
