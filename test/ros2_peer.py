"""A plain rclpy node for the interop tests, run by a ROS 2 wheel venv's Python (not by pytest).

Reads one JSON line on stdin: ``{"samples": [{"name", "type", "cdr" (hex), "sensor_data"}]}``.
For every sample it publishes the message (decoded from the CDR by rclpy) on
``/interop/from_ros/<name>`` every 50 ms, and subscribes to ``/interop/to_ros/<name>``;
the first message that arrives there is printed as ``RECV <name> <hex of rclpy's CDR>``.
Runs until stdin closes. It uses only rclpy and the message packages, so it runs in any
ROS 2 venv, and it refuses to start without a Fast DDS profile (the package's loopback
one, passed in by the test).
"""

import importlib
import json
import os
import sys
import threading

if not (os.environ.get("FASTDDS_DEFAULT_PROFILES_FILE") or os.environ.get("FASTRTPS_DEFAULT_PROFILES_FILE")):
    sys.exit("ros2_peer: no Fast DDS profile given (it must not use the default, multicast configuration)")

import rclpy  # noqa: E402
from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data  # noqa: E402
from rclpy.serialization import deserialize_message, serialize_message  # noqa: E402


def message_class(name: str) -> type:
    package, _, cls = name.rpartition("/msg/")
    return getattr(importlib.import_module(f"{package}.msg"), cls)


def main() -> None:
    plan = json.loads(sys.stdin.readline())
    rclpy.init()
    node = rclpy.create_node("interop_peer")
    publishers = []
    received: set[str] = set()
    lock = threading.Lock()

    def on_message(name: str, cls: type):
        def callback(msg) -> None:
            with lock:
                if name in received:
                    return
                received.add(name)
                print(f"RECV {name} {serialize_message(msg).hex()}", flush=True)
        return callback

    for sample in plan["samples"]:
        cls = message_class(sample["type"])
        qos = qos_profile_sensor_data if sample["sensor_data"] else QoSProfile(
            depth=10, reliability=ReliabilityPolicy.RELIABLE)
        msg = deserialize_message(bytes.fromhex(sample["cdr"]), cls)
        pub = node.create_publisher(cls, f"/interop/from_ros/{sample['name']}", qos)
        publishers.append((pub, msg))
        node.create_subscription(cls, f"/interop/to_ros/{sample['name']}", on_message(sample["name"], cls), qos)

    node.create_timer(0.05, lambda: [pub.publish(msg) for pub, msg in publishers])
    print("READY", flush=True)
    stop = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()
    while not stop.is_set():
        rclpy.spin_once(node, timeout_sec=0.1)
    node.destroy_node()
    rclpy.shutdown()


if __name__ == "__main__":
    main()
