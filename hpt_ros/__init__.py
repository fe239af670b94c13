"""hpt_ros: Heterogeneous Pre-trained Transformer (HPT) policies on ROS 2 robots.

Layers, one way through:
ROS message -> numpy (``hpt_ros.msgs``) -> observation (``hpt_ros.runtime``) ->
engine (``hpt_ros.engine``) -> action chunk -> command message (``hpt_ros.msgs``), carried by
a transport (``hpt_ros.ros``) for the nodes (``hpt_ros.nodes``).

Importing this package needs neither rclpy, cv_bridge nor a GPU.
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
