"""The fake Franka FR3: kinematics, a rate-limited kinematic arm, the feed-dog scene and a scripted teleoperator.

Pure numpy + OpenCV, no ROS: ``hpt_ros.nodes`` wires these into the fake robot node.

- ``kinematics``: FR3 forward kinematics (Franka's modified DH), Jacobian, DLS IK step.
- ``arm``: ``KinematicArm``, joints moving toward clamped targets at their velocity limits.
- ``camera``: pinhole cameras, projection, near-plane clipping.
- ``scene``: ``FeedDogScene``, table + bowl + treat per episode; renders wrist and third-person RGB.
- ``teleop``: ``ScriptedTeleoperator``, demonstrations that bring the hand over the bowl.
"""

from .arm import ARM_JOINTS, FINGER_JOINT, FINGER_MAX, FR3_LIMITS, MIRROR_FINGER_JOINT, KinematicArm
from .camera import Camera
from .kinematics import READY_POSE, forward_kinematics, ik_step, jacobian, tcp_pose, tcp_position
from .scene import FeedDogScene
from .teleop import ScriptedTeleoperator

__all__ = [
    "ARM_JOINTS",
    "Camera",
    "FINGER_JOINT",
    "FINGER_MAX",
    "FR3_LIMITS",
    "FeedDogScene",
    "KinematicArm",
    "MIRROR_FINGER_JOINT",
    "READY_POSE",
    "ScriptedTeleoperator",
    "forward_kinematics",
    "ik_step",
    "jacobian",
    "tcp_pose",
    "tcp_position",
]
