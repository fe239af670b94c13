"""Benchmark: two 640x480 rgb8 cameras at 30 Hz over the ``dds`` transport, between two processes.

    python -m bench.bench_dds_images [--seconds 5] [--rate 30] [--reliable]
    python bench/bench_dds_images.py

This process publishes both cameras (sensor-data QoS unless ``--reliable``); a receiver
process subscribes with ``raw=True`` and times what a policy node does per frame: CDR
decode + ``image_to_rgb``. Printed, all measured in this run:

* per-frame conversion time: serialise (publisher), decode + image_to_rgb (receiver),
  median and p99 in ms;
* frames sent vs received per camera, and the publish-to-callback latency;
* how much faster the numpy fast path is than the cyclonedds binding's own element-by-
  element (de)serialisation of the same frame.

DDS stays on loopback (the package's Cyclone config) in a domain of its own
(``100 + pid % 100`` unless ``--domain``).
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import threading
import time
from typing import Any

REPO = pathlib.Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # run as a file: make the package importable
    sys.path.insert(0, str(REPO))

import numpy as np  # noqa: E402

CAMERAS = ("/bench/cam_wrist", "/bench/cam_scene")
WIDTH, HEIGHT = 640, 480


def percentiles_ms(seconds: list[float]) -> str:
    if not seconds:
        return "n/a"
    values = np.asarray(seconds) * 1e3
    return f"median {np.median(values):.3f} ms, p99 {np.percentile(values, 99):.3f} ms (n={values.size})"


def qos(reliable: bool) -> Any:
    from hpt_ros.ros.transport import QOS_DEFAULT, QOS_SENSOR_DATA

    return QOS_DEFAULT if reliable else QOS_SENSOR_DATA


# ----------------------------------------------------------------------------- receiver
def run_receiver(args: argparse.Namespace) -> None:
    from hpt_ros.msgs.idl.sensor_msgs import Image
    from hpt_ros.msgs.messages import header_seconds, image_to_rgb
    from hpt_ros.ros.dds import DdsTransport

    node = DdsTransport("bench_receiver", domain_id=args.domain)
    stats: dict[str, Any] = {"frames": {c: 0 for c in CAMERAS}, "convert_s": [], "latency_s": [], "bad": 0}

    def on_frame(camera: str, data: bytes) -> None:
        received = time.time()
        start = time.perf_counter()
        msg = Image.deserialize(data)
        rgb = image_to_rgb(msg, camera)
        stats["convert_s"].append(time.perf_counter() - start)
        if msg.header.frame_id == "warmup":
            return
        stats["frames"][camera] += 1
        stats["latency_s"].append(received - header_seconds(msg))
        if rgb.shape != (HEIGHT, WIDTH, 3) or int(rgb[0, 0, 0]) != int(msg.header.stamp.nanosec % 251):
            stats["bad"] += 1

    for camera in CAMERAS:
        node.create_subscription(camera, "sensor_msgs/msg/Image", lambda data, c=camera: on_frame(c, data),
                                 qos(args.reliable), raw=True)
    done = threading.Event()
    threading.Thread(target=lambda: (sys.stdin.read(), done.set()), daemon=True).start()
    print("READY", flush=True)
    node.spin(until=done.is_set)
    node.shutdown()
    print(json.dumps(stats), flush=True)


# ----------------------------------------------------------------------------- publisher
def time_plain_binding(msg: Any, repeats: int) -> tuple[float, float]:
    """Median seconds of the binding's element-by-element serialise and deserialise."""
    cls = type(msg)
    plain = cls(header=msg.header, height=msg.height, width=msg.width, encoding=msg.encoding,
                is_bigendian=msg.is_bigendian, step=msg.step, data=np.asarray(msg.data).tolist())
    ser, deser = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        data = cls.__idl__.serialize(plain)
        ser.append(time.perf_counter() - start)
        start = time.perf_counter()
        cls.__idl__.deserialize(data)
        deser.append(time.perf_counter() - start)
    return float(np.median(ser)), float(np.median(deser))


def time_fast_path(msg: Any, repeats: int) -> tuple[float, float]:
    from hpt_ros.msgs.messages import image_to_rgb

    ser, deser = [], []
    for _ in range(repeats):
        start = time.perf_counter()
        data = msg.serialize()
        ser.append(time.perf_counter() - start)
        start = time.perf_counter()
        image_to_rgb(type(msg).deserialize(data))
        deser.append(time.perf_counter() - start)
    return float(np.median(ser)), float(np.median(deser))


def run_publisher(args: argparse.Namespace) -> None:
    from hpt_ros.msgs.messages import numpy_to_image
    from hpt_ros.ros.dds import DdsTransport

    env = dict(os.environ, PYTHONPATH=str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    receiver = subprocess.Popen(
        [sys.executable, str(pathlib.Path(__file__).resolve()), "--role", "receiver", "--domain", str(args.domain)]
        + (["--reliable"] if args.reliable else []),
        env=env, cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert receiver.stdout is not None and receiver.stdin is not None
    if receiver.stdout.readline().strip() != "READY":
        raise SystemExit("receiver did not start")

    node = DdsTransport("bench_publisher", domain_id=args.domain)
    publishers = [node.create_publisher(c, "sensor_msgs/msg/Image", qos(args.reliable)) for c in CAMERAS]
    rng = np.random.default_rng(0)
    frames = [rng.integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8) for _ in range(4)]
    messages = [numpy_to_image(node.new_message("sensor_msgs/msg/Image"), f, "rgb8") for f in frames]
    serialize_s: list[float] = []
    sent = {c: 0 for c in CAMERAS}
    tick = [0]
    phase = {"frame_id": "warmup"}

    def publish_frames() -> None:
        for camera, publisher in zip(CAMERAS, publishers, strict=True):
            msg = messages[tick[0] % len(messages)]
            now = node.now()
            msg.header.stamp.sec, msg.header.stamp.nanosec = int(now), int((now % 1) * 1e9)
            msg.header.frame_id = phase["frame_id"]
            frame = np.asarray(msg.data).reshape(HEIGHT, WIDTH, 3)
            frame.flags.writeable = True
            frame[0, 0, 0] = msg.header.stamp.nanosec % 251  # a check value the receiver verifies
            start = time.perf_counter()
            data = msg.serialize()
            serialize_s.append(time.perf_counter() - start)
            publisher.publish(data)
            if phase["frame_id"] != "warmup":
                sent[camera] += 1
        tick[0] += 1

    node.create_timer(1.0 / args.rate, publish_frames)
    node.spin(duration_s=1.0)  # discovery and warm-up, not counted
    serialize_s.clear()
    phase["frame_id"] = "bench"
    node.spin(duration_s=args.seconds)
    phase["frame_id"] = "warmup"
    node.spin(duration_s=0.5)  # let the last counted frames arrive
    node.shutdown()
    out, _ = receiver.communicate(timeout=30)
    stats = json.loads(out.strip().splitlines()[-1])

    fast_ser, fast_deser = time_fast_path(messages[0], 50)
    plain_ser, plain_deser = time_plain_binding(messages[0], args.plain_repeats)
    qos_name = "reliable, keep-last 10" if args.reliable else "sensor data (best effort, keep-last 5)"
    print(f"2 x {WIDTH}x{HEIGHT} rgb8 at {args.rate:g} Hz for {args.seconds:g} s, QoS {qos_name}, "
          f"domain {args.domain}, loopback")
    print(f"  serialise (publisher):               {percentiles_ms(serialize_s)}")
    print(f"  decode + image_to_rgb (receiver):    {percentiles_ms(stats['convert_s'])}")
    print(f"  publish -> callback latency:         {percentiles_ms(stats['latency_s'])}")
    for camera in CAMERAS:
        print(f"  {camera}: sent {sent[camera]}, received {stats['frames'][camera]}")
    print(f"  frames with wrong content:           {stats['bad']}")
    print(f"  fast path vs binding's element-by-element CDR (median of {args.plain_repeats}):")
    print(f"    serialise   {plain_ser * 1e3:8.2f} ms -> {fast_ser * 1e3:.3f} ms "
          f"({plain_ser / fast_ser:,.0f}x faster)")
    print(f"    deserialise {plain_deser * 1e3:8.2f} ms -> {fast_deser * 1e3:.3f} ms incl. image_to_rgb "
          f"({plain_deser / fast_deser:,.0f}x faster)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--reliable", action="store_true", help="reliable QoS instead of sensor data (best effort)")
    parser.add_argument("--domain", type=int, default=100 + os.getpid() % 100)
    parser.add_argument("--plain-repeats", type=int, default=5)
    parser.add_argument("--role", choices=("publisher", "receiver"), default="publisher", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.role == "receiver":
        run_receiver(args)
    else:
        run_publisher(args)


if __name__ == "__main__":
    main()
