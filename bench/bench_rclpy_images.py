"""Benchmark: two 640x480 rgb8 cameras at 30 Hz over real rclpy (Fast DDS), between two processes.

    .venv-jazzy/bin/python bench/bench_rclpy_images.py [--seconds 5] [--rate 30] [--reliable]
    .venv-jazzy/bin/python bench/bench_rclpy_images.py --matrix     # every receiver and DDS variant

Runs in a ROS 2 wheel venv (``scripts/install_ros_wheels.sh jazzy``). This process
publishes both cameras through the rclpy transport (``numpy_to_image`` + ``publish``, as
the fake robot does); a receiver process subscribes and does what the policy node does per
frame (``image_to_rgb``). Printed per variant, all measured in this run: frames received
per camera as a fraction of those sent, the time of each stage (fill and publish in the
publisher, the callback in the receiver) and the publish-to-callback latency, so that a
loss can be placed: publisher, DDS transport (UDP fragments, socket buffers, shared
memory), executor, subscriber.

Receivers: ``transport`` (the package's RclpyTransport: MultiThreadedExecutor, message
callbacks in one group), ``raw`` (the same with ``raw=True``: no Python message is built),
``single`` (plain rclpy, SingleThreadedExecutor). DDS variants (Fast DDS profiles, all on
loopback): ``package`` (the package's profile), ``udp-small-buffers`` (the package's
transport with the OS default 208 KiB socket buffers), ``shm`` (shared memory, Fast DDS's
default 512 KiB segment, plus UDP on 127.0.0.1), ``shm-16mib`` (the same with a 16 MiB
segment).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a file: make the package importable
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

CAMERAS = ("/bench/cam_wrist", "/bench/cam_scene")
WIDTH, HEIGHT = 640, 480
RECEIVERS = ("transport", "raw", "single")

_UDP = """<transport_descriptor><transport_id>udp</transport_id><type>UDPv4</type>
<interfaceWhiteList><address>127.0.0.1</address></interfaceWhiteList>{buffers}</transport_descriptor>"""
_SHM = """<transport_descriptor><transport_id>shm</transport_id><type>SHM</type>{segment}</transport_descriptor>"""
_PROFILE = """<?xml version="1.0" encoding="UTF-8"?>
<dds xmlns="http://www.eprosima.com"><profiles><transport_descriptors>{descriptors}</transport_descriptors>
<participant profile_name="bench" is_default_profile="true"><rtps><useBuiltinTransports>false</useBuiltinTransports>
<userTransports>{ids}</userTransports><builtin>
<metatrafficUnicastLocatorList><locator><udpv4><address>127.0.0.1</address></udpv4></locator>
</metatrafficUnicastLocatorList>
<initialPeersList><locator><udpv4><address>127.0.0.1</address></udpv4></locator></initialPeersList>
</builtin></rtps></participant></profiles></dds>
"""


def dds_variants(folder: pathlib.Path) -> dict[str, pathlib.Path]:
    """name -> Fast DDS profiles file; every one keeps DDS on 127.0.0.1 (or shared memory)."""
    from hpt_ros.ros.dds_config import fastdds_loopback_profile_path

    small = _PROFILE.format(descriptors=_UDP.format(buffers=""), ids="<transport_id>udp</transport_id>")
    ids = "<transport_id>shm</transport_id><transport_id>udp</transport_id>"
    shm = _PROFILE.format(descriptors=_SHM.format(segment="") + _UDP.format(buffers=""), ids=ids)
    shm_big = _PROFILE.format(descriptors=_SHM.format(segment="<segment_size>16777216</segment_size>")
                              + _UDP.format(buffers=""), ids=ids)
    out = {"package": fastdds_loopback_profile_path()}
    for name, text in (("udp-small-buffers", small), ("shm", shm), ("shm-16mib", shm_big)):
        path = folder / f"{name}.xml"
        path.write_text(text)
        out[name] = path
    return out


def percentiles_ms(seconds: list[float]) -> str:
    if not seconds:
        return "n/a"
    values = np.asarray(seconds) * 1e3
    return f"median {np.median(values):.2f} ms, p99 {np.percentile(values, 99):.2f} ms"


def qos(reliable: bool) -> Any:
    from hpt_ros.ros.transport import QOS_DEFAULT, QOS_SENSOR_DATA

    return QOS_DEFAULT if reliable else QOS_SENSOR_DATA


# ----------------------------------------------------------------------------- receiver
def run_receiver(args: argparse.Namespace) -> None:
    from hpt_ros.msgs.messages import header_seconds, image_to_rgb

    stats: dict[str, Any] = {"frames": {c: 0 for c in CAMERAS}, "callback_s": [], "latency_s": []}
    counting = threading.Event()

    def on_frame(camera: str, msg: Any) -> None:
        received = time.time()
        start = time.perf_counter()
        if args.receiver == "raw":
            stamp = None
        else:
            image_to_rgb(msg, camera)
            stamp = header_seconds(msg)
        stats["callback_s"].append(time.perf_counter() - start)
        if counting.is_set():
            stats["frames"][camera] += 1
            if stamp is not None:
                stats["latency_s"].append(received - stamp)

    done = threading.Event()

    def control() -> None:
        for line in sys.stdin:
            if line.strip() == "COUNT":
                counting.set()
            elif line.strip() == "STOP":
                counting.clear()
        done.set()

    threading.Thread(target=control, daemon=True).start()
    if args.receiver == "single":
        import rclpy
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy, qos_profile_sensor_data
        from sensor_msgs.msg import Image

        from hpt_ros.ros.dds_config import ensure_dds_config

        ensure_dds_config()
        rclpy.init()
        node = rclpy.create_node("bench_receiver")
        profile = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE) if args.reliable \
            else qos_profile_sensor_data
        for camera in CAMERAS:
            node.create_subscription(Image, camera, lambda m, c=camera: on_frame(c, m), profile)
        executor = SingleThreadedExecutor()
        executor.add_node(node)
        print("READY", flush=True)
        while not done.is_set():
            executor.spin_once(timeout_sec=0.05)
        node.destroy_node()
        rclpy.try_shutdown()
    else:
        from hpt_ros.ros import make_transport

        node = make_transport("rclpy", "bench_receiver")
        for camera in CAMERAS:
            node.create_subscription(camera, "sensor_msgs/msg/Image", lambda m, c=camera: on_frame(c, m),
                                     qos(args.reliable), raw=args.receiver == "raw")
        print("READY", flush=True)
        node.spin(until=done.is_set)
        node.shutdown()
    print(json.dumps(stats), flush=True)


# ----------------------------------------------------------------------------- publisher
def run_once(args: argparse.Namespace, receiver_kind: str, profile: pathlib.Path) -> dict[str, Any]:
    """One publisher (this process, already initialised) and one receiver of ``receiver_kind``."""
    env = dict(os.environ, FASTRTPS_DEFAULT_PROFILES_FILE=str(profile), FASTDDS_DEFAULT_PROFILES_FILE=str(profile))
    receiver = subprocess.Popen(
        [sys.executable, str(pathlib.Path(__file__).resolve()), "--role", "receiver", "--receiver", receiver_kind]
        + (["--reliable"] if args.reliable else []),
        env=env, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert receiver.stdout is not None and receiver.stdin is not None
    if receiver.stdout.readline().strip() != "READY":
        raise SystemExit("receiver did not start")
    node = PUBLISHER["node"]
    state = PUBLISHER["state"]
    node.spin(duration_s=1.5)  # discovery and warm-up, not counted
    state["fill_s"].clear()
    state["publish_s"].clear()
    state["sent"] = {c: 0 for c in CAMERAS}
    receiver.stdin.write("COUNT\n")
    receiver.stdin.flush()
    state["counting"] = True
    node.spin(duration_s=args.seconds)
    state["counting"] = False
    receiver.stdin.write("STOP\n")
    receiver.stdin.flush()
    node.spin(duration_s=0.5)  # frames in flight arrive, and are not counted
    out, _ = receiver.communicate(timeout=60)
    stats = json.loads(out.strip().splitlines()[-1])
    return {"sent": dict(state["sent"]), "fill_s": list(state["fill_s"]), "publish_s": list(state["publish_s"]),
            **stats}


PUBLISHER: dict[str, Any] = {}


def start_publisher(args: argparse.Namespace, profile: pathlib.Path) -> None:
    os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] = os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] = str(profile)
    from hpt_ros.msgs.messages import numpy_to_image
    from hpt_ros.ros import make_transport

    node = make_transport("rclpy", "bench_publisher")
    publishers = [node.create_publisher(c, "sensor_msgs/msg/Image", qos(args.reliable)) for c in CAMERAS]
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(4)]
    state: dict[str, Any] = {"fill_s": [], "publish_s": [], "sent": {c: 0 for c in CAMERAS}, "counting": False,
                             "tick": 0}

    def publish_frames() -> None:
        for camera, publisher in zip(CAMERAS, publishers, strict=True):
            start = time.perf_counter()
            msg = numpy_to_image(node.new_message("sensor_msgs/msg/Image"), frames[state["tick"] % len(frames)],
                                 "rgb8", stamp_s=node.now())
            filled = time.perf_counter()
            publisher.publish(msg)
            state["fill_s"].append(filled - start)
            state["publish_s"].append(time.perf_counter() - filled)
            if state["counting"]:
                state["sent"][camera] += 1
        state["tick"] += 1

    node.create_timer(1.0 / args.rate, publish_frames, group="cameras")
    PUBLISHER.update(node=node, state=state)


def report(name: str, result: dict[str, Any], rate: float, seconds: float) -> str:
    sent = sum(result["sent"].values())
    got = sum(result["frames"].values())
    per_camera = ", ".join(f"{result['frames'][c] / seconds:.1f}" for c in CAMERAS)
    return (f"{name:34s} received {got}/{sent} = {got / max(sent, 1):.2f} of the frames sent "
            f"({per_camera} Hz of {rate:g})\n"
            f"{'':34s} fill {percentiles_ms(result['fill_s'])}; publish {percentiles_ms(result['publish_s'])}\n"
            f"{'':34s} receiver callback {percentiles_ms(result['callback_s'])}; "
            f"latency {percentiles_ms(result['latency_s'])}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--reliable", action="store_true", help="reliable QoS instead of sensor data (best effort)")
    parser.add_argument("--receiver", choices=RECEIVERS, default="transport")
    parser.add_argument("--dds", default="package", help="Fast DDS variant: package, udp-small-buffers, shm")
    parser.add_argument("--matrix", action="store_true", help="every receiver with the package profile, then "
                                                             "every DDS variant with the transport receiver")
    parser.add_argument("--role", choices=("publisher", "receiver"), default="publisher", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.setdefault("ROS_DOMAIN_ID", str(200 + os.getpid() % 32))
    if args.role == "receiver":
        run_receiver(args)
        return
    with tempfile.TemporaryDirectory() as folder:
        variants = dds_variants(pathlib.Path(folder))
        if args.matrix:
            runs = [(r, "package") for r in RECEIVERS] + [("transport", v) for v in variants if v != "package"]
        else:
            runs = [(args.receiver, args.dds)]
        qos_name = "reliable, keep-last 10" if args.reliable else "sensor data (best effort, keep-last 5)"
        print(f"2 x {WIDTH}x{HEIGHT} rgb8 at {args.rate:g} Hz for {args.seconds:g} s per run, QoS {qos_name}, "
              f"ROS_DOMAIN_ID {os.environ['ROS_DOMAIN_ID']}, loopback", flush=True)
        # a participant's transports are fixed when it is made: one publisher process per DDS variant
        for dds in dict.fromkeys(d for _, d in runs):
            if dds != runs[0][1]:
                command = [sys.executable, __file__, "--seconds", str(args.seconds), "--rate", str(args.rate),
                           "--dds", dds] + (["--reliable"] if args.reliable else [])
                for receiver_kind in [r for r, d in runs if d == dds]:
                    out = subprocess.run(command + ["--receiver", receiver_kind], capture_output=True, text=True,
                                         cwd=REPO)
                    print("\n".join(out.stdout.splitlines()[1:]) or out.stderr[-2000:], flush=True)
                continue
            start_publisher(args, variants[dds])
            for receiver_kind in [r for r, d in runs if d == dds]:
                result = run_once(args, receiver_kind, variants[dds])
                print(report(f"receiver {receiver_kind}, dds {dds}:", result, args.rate, args.seconds), flush=True)
            PUBLISHER["node"].shutdown()


if __name__ == "__main__":
    main()
