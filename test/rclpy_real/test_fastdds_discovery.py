"""The package's Fast DDS loopback profile lets many participants find each other.

Discovery there is unicast to 127.0.0.1: a participant announces itself to the ports of
participant ids 0..maxInitialPeersRange-1. With Fast DDS's default of 4, two participants
whose ids are both 4 or more never match (a graph of more than four ROS processes, or a
process restarted while its old id is still taken). Here seven participants (one rclpy
context each) start; the last two, whose ids are at least 5, must exchange a message.
"""

from __future__ import annotations

import threading
import time

import rclpy
from rclpy.executors import SingleThreadedExecutor
from std_msgs.msg import String

PARTICIPANTS = 7


def test_participants_beyond_the_fourth_discover_each_other() -> None:
    contexts = []
    nodes = []
    received: list[str] = []
    try:
        for i in range(PARTICIPANTS):
            context = rclpy.Context()
            rclpy.init(context=context)
            contexts.append(context)
            nodes.append(rclpy.create_node(f"discovery_{i}", context=context))
        listener, talker = nodes[-2], nodes[-1]
        listener.create_subscription(String, "/discovery_check", lambda msg: received.append(msg.data), 10)
        publisher = talker.create_publisher(String, "/discovery_check", 10)
        executor = SingleThreadedExecutor(context=contexts[-2])
        executor.add_node(listener)
        spinner = threading.Thread(target=executor.spin, daemon=True)
        spinner.start()
        deadline = time.monotonic() + 30.0
        while not received and time.monotonic() < deadline:
            publisher.publish(String(data="found"))
            time.sleep(0.2)
        assert received, ("participants 6 and 7 on loopback did not discover each other in 30 s "
                          "(Fast DDS profile: maxInitialPeersRange)")
        executor.shutdown()
    finally:
        for node in nodes:
            node.destroy_node()
        for context in contexts:
            rclpy.try_shutdown(context=context)
