#!/usr/bin/env bash
# Create a venv with real ROS 2 client libraries from the package index (third-party
# wheels of rclpy, Fast DDS and the message packages; no ROS 2 install needed):
#   scripts/install_ros_wheels.sh jazzy    ./.venv-jazzy:  rclpy 7.1 on Fast DDS 2.14, plus hpt_ros (editable)
#   scripts/install_ros_wheels.sh kilted   ./.venv-kilted: rclpy 9.1 on Fast DDS 3.2, plus hpt_ros (editable)
# The two wheel sets conflict, hence one venv each. Re-running only installs what is missing.
# The venv folder can be changed with HPT_ROS_JAZZY_VENV / HPT_ROS_KILTED_VENV.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
MESSAGES="sensor-msgs std-msgs trajectory-msgs geometry-msgs diagnostic-msgs rosgraph-msgs"
case "${1:-}" in
  jazzy)
    VENV=${HPT_ROS_JAZZY_VENV:-.venv-jazzy}
    # rcl_interfaces, lifecycle_msgs and rcl_lifecycle come with rclpy
    packages=("ros-jazzy-rclpy[fastrtps]")
    for m in $MESSAGES; do packages+=("ros-jazzy-$m"); done
    # torch pinned: the CPU wheel, not the CUDA one an unpinned resolve pulls in
    packages+=("torch==2.13.0" "pytest>=7" -e .)
    ;;
  kilted)
    VENV=${HPT_ROS_KILTED_VENV:-.venv-kilted}
    packages=(ros-rclpy ros-rmw-fastrtps-cpp)
    for m in $MESSAGES; do packages+=("ros-$m"); done
    packages+=("torch==2.13.0" "pytest>=7" -e .)
    ;;
  *)
    echo "usage: $0 jazzy|kilted" >&2
    exit 2
    ;;
esac
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
"$VENV/bin/python" -m pip install -q --upgrade pip
"$VENV/bin/python" -m pip install -q "${packages[@]}"
# the Franka meshes of the simulated robot (its own dependencies are not needed)
"$VENV/bin/python" -m pip install -q --no-deps "dm-robotics-panda==0.4.8"
# fail here, not in the tests, when the wheels do not load on this machine
"$VENV/bin/python" -c "import rclpy, rclpy.lifecycle, sensor_msgs.msg, trajectory_msgs.msg, diagnostic_msgs.msg, \
geometry_msgs.msg, std_msgs.msg, rosgraph_msgs.msg; print('$VENV: rclpy from', rclpy.__file__)"
