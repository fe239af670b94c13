"""What the live view shows: the robot spec's topics and the ones the package's nodes publish."""

from __future__ import annotations

from dataclasses import dataclass

from hpt_ros.ros.transport import QOS_LATCHED, QOS_SENSOR_DATA, QoSProfile
from hpt_ros.spec import RobotSpec

__all__ = ["DIAGNOSTICS_TOPIC", "PREDICTED_CHUNK_TOPIC", "SAFETY_STATE_TOPIC", "ViewTopic", "view_topics"]

# The nodes' own topics (hpt_ros.nodes.policy_node / fake_robot name them the same; a test keeps them equal):
# repeated here so that the view, a consumer of the graph, imports no node.
DIAGNOSTICS_TOPIC = "/diagnostics"
PREDICTED_CHUNK_TOPIC = "/hpt/predicted_chunk"
TREAT_POSE_TOPIC = "/fake_robot/treat_pose"
TASK_STATUS_TOPIC = "/fake_robot/task_status"
#: a JSON channel the view derives from the policy node's diagnostics (no ROS topic of its own)
SAFETY_STATE_TOPIC = "/hpt/safety_state"


@dataclass(frozen=True)
class ViewTopic:
    """One ROS topic served as a Foxglove channel; ``what`` says why it is there."""

    topic: str
    type: str
    what: str
    qos: QoSProfile = QOS_SENSOR_DATA


def view_topics(spec: RobotSpec) -> list[ViewTopic]:
    """Cameras, joint states, commands, enable, predicted chunks, diagnostics, the task's state.

    Subscriptions are best effort (they match reliable and best-effort publishers alike and
    never slow a publisher down), except the latched task status, which a late viewer must get.
    """
    topics = [ViewTopic(s.topic, s.type, f"camera {s.name}" if s.is_image else f"sensor {s.name}")
              for s in spec.sensors]
    action = spec.action
    topics.append(ViewTopic(action.command.topic, action.command.type, f"command ({action.kind})"))
    if action.gripper is not None:
        topics.append(ViewTopic(action.gripper.topic, action.gripper.type, "gripper command"))
    topics += [
        ViewTopic(spec.safety.enable_topic, "std_msgs/msg/Bool", "motion enable"),
        ViewTopic(PREDICTED_CHUNK_TOPIC, "std_msgs/msg/Float64MultiArray", "predicted action chunk"),
        ViewTopic(DIAGNOSTICS_TOPIC, "diagnostic_msgs/msg/DiagnosticArray", "diagnostics"),
        ViewTopic(TREAT_POSE_TOPIC, "geometry_msgs/msg/PoseStamped", "treat pose (simulated robot)"),
        ViewTopic(TASK_STATUS_TOPIC, "std_msgs/msg/String", "task status (simulated robot)", QOS_LATCHED),
    ]
    seen: dict[str, ViewTopic] = {}
    for t in topics:  # a spec may reuse a topic (one JointState for arm and gripper): serve it once
        if t.topic in seen and seen[t.topic].type != t.type:
            raise ValueError(f"topic {t.topic!r} is both {seen[t.topic].type} ({seen[t.topic].what}) and "
                             f"{t.type} ({t.what})")
        seen.setdefault(t.topic, t)
    return list(seen.values())
