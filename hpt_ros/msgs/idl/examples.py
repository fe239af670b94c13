"""One example message of every registered IDL type, with values that exercise CDR alignment.

Odd-length and non-ASCII strings, empty and odd-length sequences, negative numbers and
sub-second stamps: what serialisation tests, the inter-process DDS test and trying a
transport by hand need. :func:`example_messages` builds fresh objects on every call.
"""

import numpy as np

from .builtin_interfaces import Duration, Time
from .diagnostic_msgs import DiagnosticArray, DiagnosticStatus, KeyValue
from .geometry_msgs import Point, Pose, PoseStamped, Quaternion, Twist, TwistStamped, Vector3
from .registry import iter_message_types
from .rosgraph_msgs import Clock
from .sensor_msgs import CompressedImage, Image, JointState
from .std_msgs import Bool, Float64, Float64MultiArray, Header, MultiArrayDimension, MultiArrayLayout, String
from .trajectory_msgs import JointTrajectory, JointTrajectoryPoint

__all__ = ["example_messages"]


def _header(frame: str = "cam_é") -> Header:
    return Header(stamp=Time(sec=1_749_315_324, nanosec=951_608_064), frame_id=frame)


def example_messages() -> dict[str, object]:
    """'pkg/msg/Name' -> an example message, for every type in MESSAGE_TYPES."""
    rng = np.random.default_rng(7)
    point = JointTrajectoryPoint(
        positions=[0.1, -0.2, 0.3], velocities=[], accelerations=[1.5], effort=[],
        time_from_start=Duration(sec=0, nanosec=250_000_000))
    examples: dict[str, object] = {
        "builtin_interfaces/msg/Time": Time(sec=-2, nanosec=500_000_000),
        "builtin_interfaces/msg/Duration": Duration(sec=3, nanosec=7),
        "std_msgs/msg/Header": _header("a"),
        "std_msgs/msg/Bool": Bool(data=True),
        "std_msgs/msg/Float64": Float64(data=-1.25),
        "std_msgs/msg/String": String(data="odd length ✓"),
        "std_msgs/msg/MultiArrayDimension": MultiArrayDimension(label="joints", size=7, stride=7),
        "std_msgs/msg/MultiArrayLayout": MultiArrayLayout(
            dim=[MultiArrayDimension(label="x", size=3, stride=6), MultiArrayDimension(label="yz", size=2, stride=2)],
            data_offset=1),
        "std_msgs/msg/Float64MultiArray": Float64MultiArray(
            layout=MultiArrayLayout(dim=[MultiArrayDimension(label="a", size=3, stride=3)], data_offset=0),
            data=[1.0, -2.5, 3.25]),
        "sensor_msgs/msg/Image": Image(
            header=_header(), height=3, width=5, encoding="rgb8", is_bigendian=0, step=16,
            data=rng.integers(0, 256, 48, dtype=np.uint8)),
        "sensor_msgs/msg/CompressedImage": CompressedImage(
            header=_header("wrist"), format="jpeg", data=rng.integers(0, 256, 13, dtype=np.uint8)),
        "sensor_msgs/msg/JointState": JointState(
            header=_header("base"), name=["fr3_joint1", "fr3_joint2", "j3"], position=[0.0, -0.5, 1.25],
            velocity=[0.1, 0.2, 0.3], effort=[]),
        "geometry_msgs/msg/Point": Point(x=1.0, y=-2.0, z=3.5),
        "geometry_msgs/msg/Quaternion": Quaternion(x=0.0, y=0.0, z=0.7071067811865476, w=0.7071067811865476),
        "geometry_msgs/msg/Pose": Pose(position=Point(x=0.3, y=0.0, z=0.5), orientation=Quaternion()),
        "geometry_msgs/msg/PoseStamped": PoseStamped(
            header=_header("fr3_link0"),
            pose=Pose(position=Point(x=0.4, y=-0.1, z=0.6), orientation=Quaternion(x=1.0, y=0.0, z=0.0, w=0.0))),
        "geometry_msgs/msg/Vector3": Vector3(x=0.5, y=0.25, z=-0.125),
        "geometry_msgs/msg/Twist": Twist(linear=Vector3(x=0.1), angular=Vector3(z=-0.3)),
        "geometry_msgs/msg/TwistStamped": TwistStamped(
            header=_header("tool"), twist=Twist(linear=Vector3(x=0.1, y=0.2, z=0.3), angular=Vector3(z=1.0))),
        "trajectory_msgs/msg/JointTrajectoryPoint": point,
        "trajectory_msgs/msg/JointTrajectory": JointTrajectory(
            header=_header("x"), joint_names=["j1", "joint_2", "j3"],
            points=[point, JointTrajectoryPoint(positions=[1.0, 2.0, 3.0], time_from_start=Duration(sec=1))]),
        "diagnostic_msgs/msg/KeyValue": KeyValue(key="rate_hz", value="30"),
        "diagnostic_msgs/msg/DiagnosticStatus": DiagnosticStatus(
            level=1, name="policy", message="stale camera", hardware_id="fr3",
            values=[KeyValue(key="age_s", value="0.31"), KeyValue(key="k", value="")]),
        "diagnostic_msgs/msg/DiagnosticArray": DiagnosticArray(
            header=_header("d"),
            status=[DiagnosticStatus(level=0, name="a", message="", hardware_id="hw"),
                    DiagnosticStatus(level=2, name="bb", message="error!", hardware_id="",
                                     values=[KeyValue(key="x", value="1")])]),
        "rosgraph_msgs/msg/Clock": Clock(clock=Time(sec=12, nanosec=345)),
    }
    missing = [name for name, _ in iter_message_types() if name not in examples]
    if missing:  # a type was registered without an example: keep this module complete
        raise RuntimeError(f"no example message for {', '.join(missing)}")
    return examples
