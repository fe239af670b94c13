"""Robot and task specs: the per-robot YAML that maps sensors to stems and the head to commands.

``load_spec(path)`` reads and validates a file; ``parse_spec(mapping)`` validates data
already in memory. Every mistake raises ``SpecError`` naming the file, the key path,
what was expected and what was found.
"""

from .errors import SpecError
from .loader import SUPPORTED_IMAGE_SIZES, load_spec, parse_spec, resolve_spec_path
from .schema import (
    MEASURED_LATENCY,
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

__all__ = [
    "ActionSpec",
    "CommandSpec",
    "EngineSpec",
    "ExecutionSpec",
    "GripperSpec",
    "JointLimit",
    "KeepOutPlane",
    "KinematicsSpec",
    "MEASURED_LATENCY",
    "ModelSpec",
    "RobotSpec",
    "SUPPORTED_IMAGE_SIZES",
    "SafetySpec",
    "SensorSpec",
    "SpecError",
    "StemSpec",
    "WorkspaceSpec",
    "load_spec",
    "parse_spec",
    "resolve_spec_path",
]
