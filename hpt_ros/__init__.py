"""hpt_ros: Heterogeneous Pre-trained Transformer (HPT) policies on ROS 2 robots.

Layers, one way through:
ROS message -> numpy (``hpt_ros.ros``) -> observation (``hpt_ros.runtime``) ->
engine (``hpt_ros.engine``) -> action chunk -> command (``hpt_ros.ros``).

Importing this package needs neither rclpy, cv_bridge nor a GPU.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
