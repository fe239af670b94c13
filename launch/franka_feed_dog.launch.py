"""Franka FR3 feeds the dog: cameras + joint states -> HPT policy -> arm and gripper commands.

    ros2 launch hpt_ros franka_feed_dog.launch.py                      # fake hardware (default)
    ros2 launch hpt_ros franka_feed_dog.launch.py use_fake_hardware:=false robot_ip:=172.16.0.2 \
        use_cameras:=true model:=/path/to/checkpoint engine:=onnxruntime

Motion is gated by the enable topic of the robot config (std_msgs/Bool on /hpt/enable):
    ros2 topic pub --once /hpt/enable std_msgs/msg/Bool "{data: true}"
"""

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, IncludeLaunchDescription
from launch.conditions import IfCondition, UnlessCondition
from launch.launch_description_sources import PythonLaunchDescriptionSource
from launch.substitutions import AndSubstitution, LaunchConfiguration, NotSubstitution, PathJoinSubstitution
from launch_ros.actions import Node
from launch_ros.substitutions import FindPackageShare

ARGUMENTS = (
    ("robot_ip", "", "IP of the FR3 control box (ignored with use_fake_hardware:=true)"),
    ("use_fake_hardware", "true", "start hpt_ros fake_robot instead of franka_ros2's bringup"),
    ("robot_config", "franka_fr3", "robot spec YAML (a path, or a name in share/hpt_ros/config/robots)"),
    ("model", "", "checkpoint dir, ONNX file, or empty for the package's default model"),
    ("rate_hz", "0", "control rate [Hz]; 0 keeps the robot config's rate"),
    ("engine", "", "torch | onnxruntime; empty keeps the robot config's engine"),
    ("allow_spec_mismatch", "false",
     "run a model made for a robot spec with other joints, views or action layout (warned at every start)"),
    ("use_cameras", "false", "start two realsense2_camera drivers (wrist + third person) on real hardware"),
    ("use_sim_time", "false", "use /clock (e.g. with 'ros2 bag play --clock')"),
)


def generate_launch_description():
    fake = LaunchConfiguration("use_fake_hardware")
    use_sim_time = LaunchConfiguration("use_sim_time")
    cameras = AndSubstitution(LaunchConfiguration("use_cameras"), NotSubstitution(fake))
    robot_config = LaunchConfiguration("robot_config")

    franka_bringup = IncludeLaunchDescription(
        PythonLaunchDescriptionSource(
            PathJoinSubstitution([FindPackageShare("franka_bringup"), "launch", "franka.launch.py"])
        ),
        launch_arguments={"robot_ip": LaunchConfiguration("robot_ip"), "arm_id": "fr3",
                          "load_gripper": "true"}.items(),
        condition=UnlessCondition(fake),
    )
    camera_drivers = [
        IncludeLaunchDescription(
            PythonLaunchDescriptionSource(
                PathJoinSubstitution([FindPackageShare("realsense2_camera"), "launch", "rs_launch.py"])
            ),
            launch_arguments={"camera_name": name, "camera_namespace": "", "rgb_camera.color_profile": "640,480,30",
                              "enable_depth": "false"}.items(),
            condition=IfCondition(cameras),
        )
        for name in ("wrist_camera", "third_person_camera")
    ]
    fake_robot = Node(
        package="hpt_ros",
        executable="fake_robot",
        name="fake_robot",
        output="screen",
        parameters=[{"robot_config": robot_config, "use_sim_time": use_sim_time}],
        condition=IfCondition(fake),
    )
    policy = Node(
        package="hpt_ros",
        executable="policy_node",
        name="policy_node",
        output="screen",
        parameters=[{
            "robot_config": robot_config,
            "model": LaunchConfiguration("model"),
            "rate_hz": LaunchConfiguration("rate_hz"),
            "engine": LaunchConfiguration("engine"),
            "allow_spec_mismatch": LaunchConfiguration("allow_spec_mismatch"),
            "use_sim_time": use_sim_time,
        }],
    )
    return LaunchDescription(
        [DeclareLaunchArgument(name, default_value=default, description=text) for name, default, text in ARGUMENTS]
        + [franka_bringup, *camera_drivers, fake_robot, policy]
    )
