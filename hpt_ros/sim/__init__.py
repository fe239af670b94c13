"""The simulated Franka feeding a dog: MuJoCo physics and rendering, and a scripted expert.

No ROS: ``hpt_ros.nodes`` wires these into the fake robot and the scripted teleoperator.

- ``kinematics``: Franka forward kinematics (Franka's modified DH), Jacobian, DLS IK step.
- ``mjcf``: the MuJoCo model (the Panda meshes of ``dm-robotics-panda`` with FR3 joints
  and limits, position actuators, a table, a bowl, a treat, a dog, two cameras).
- ``meshes``: light render copies of the arm's meshes.
- ``feed_dog``: ``FeedDogSim`` (physics, seeded episodes, success judged by physics) and
  ``SceneRenderer`` (offscreen EGL/OSMesa rendering of the two cameras).
- ``expert``: ``FeedDogExpert``, demonstrations that pick the treat and drop it into the bowl.
"""

from .expert import FeedDogExpert
from .feed_dog import EpisodeLayout, FeedDogSim, SceneRenderer, episode_layout
from .kinematics import READY_POSE, forward_kinematics, ik_step, jacobian, tcp_pose, tcp_position

__all__ = [
    "EpisodeLayout",
    "FeedDogExpert",
    "FeedDogSim",
    "READY_POSE",
    "SceneRenderer",
    "episode_layout",
    "forward_kinematics",
    "ik_step",
    "jacobian",
    "tcp_pose",
    "tcp_position",
]
