"""Benchmark: can the teleop recorder keep up with two 640x480 rgb8 cameras at 30 Hz and a 1 kHz JointState?

    PYTHONPATH=. python bench/bench_recorder.py [--duration 10] [--width 640 --height 480]

Three processes talk DDS on loopback (a private ROS_DOMAIN_ID):

* the recorder (``hpt-ros record``, manual mode, as an operator runs it: fsync on);
* a publisher process (``--publish``): two cameras (sensor-data QoS: best effort, as
  camera drivers publish) and /joint_states (reliable, depth 10) at the given rates; it
  counts what it sent, writes a sequence number into every message's frame_id, and
  reports its own CPU;
* this process: starts the episode over ``/hpt_recorder/command`` before the publisher
  begins, saves it after the publisher has finished, and reads the bag back with the
  ``mcap`` library.

Printed per topic: sent, in the bag (episode.yaml / mcap), missing (by sequence number,
and where: start / middle / end of the run), the recorder's own ``dropped`` and DDS
``lost`` counters. Then the recorder's CPU (process CPU time / wall over the publishing
window, from /proc), per thread (``hpt-rec-receive``: the transport's message thread
running the recorder's callback; ``hpt-rec-writer``: the bag writer; ``recv``: Cyclone's
receive thread), and the UDP datagrams the kernel dropped on the recorder's sockets
(socket receive buffer full: the signature of a receive thread that got no CPU).
Exit status 1 if any message is missing or dropped.

``--publisher-transport rclpy`` publishes through real rclpy and ``--recorder-transport
rclpy`` runs the recorder as ``ros2 run`` does (``teleop_recorder --ros-args ...``), both
on Fast DDS; run it with a ROS 2 wheel venv's Python (``scripts/install_ros_wheels.sh``).

``--recorder-nice -10`` renices the recorder (root) and ``--recorder-args ...`` passes
options to it, to study CPU contention (e.g. with busy loops running beside it).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from _processes import stop_children

ROOT = Path(__file__).resolve().parents[1]
CAMERAS = ("/wrist_camera/color/image_raw", "/third_person_camera/color/image_raw")
JOINT_STATES = "/joint_states"


# -- publisher process -------------------------------------------------------------------------------

SEQ_MARK = b"seq=00000000"  # in header.frame_id: the publisher's sequence number, to find what is missing


def _stamp_patcher(template: bytes):
    """A function that returns ``template`` with its header stamp set to ``t`` (CDR little endian)
    and its sequence number written into the frame_id."""
    base = bytearray(template)
    pack = struct.Struct("<iI").pack_into
    at = template.index(SEQ_MARK) + 4

    def stamped(t: float, seq: int) -> bytes:
        sec = int(t)
        pack(base, 4, sec, int((t - sec) * 1e9))
        base[at:at + 8] = b"%08d" % seq
        return bytes(base)

    return stamped


def sequence_number(cdr: bytes) -> int:
    at = cdr.find(SEQ_MARK[:4], 12)
    return int(cdr[at + 4:at + 12])


def _where(missing: list[int], sent: int) -> str:
    """'start 3, middle 2 (at 41 %, 87 %), end 1' for the missing sequence numbers."""
    if not missing:
        return ""
    edge = max(5, sent // 100)
    start = [m for m in missing if m < edge]
    end = [m for m in missing if m >= sent - edge]
    middle = [m for m in missing if edge <= m < sent - edge]
    parts = []
    if start:
        parts.append(f"start {len(start)}")
    if middle:
        spots = sorted({round(100 * m / sent) for m in middle})
        parts.append(f"middle {len(middle)} (at {', '.join(f'{p}%' for p in spots[:8])})")
    if end:
        parts.append(f"end {len(end)}")
    return ", ".join(parts)


def publish(args: argparse.Namespace) -> int:
    import numpy as np

    from hpt_ros.msgs import messages

    from hpt_ros.ros import make_transport
    from hpt_ros.ros.dds import serialize
    from hpt_ros.ros.transport import QOS_DEFAULT, QOS_SENSOR_DATA

    t = make_transport(args.publisher_transport, "bench_publisher")
    cams = [t.create_publisher(topic, "sensor_msgs/msg/Image", QOS_SENSOR_DATA) for topic in CAMERAS]
    js_pub = t.create_publisher(JOINT_STATES, "sensor_msgs/msg/JointState", QOS_DEFAULT)
    rng = np.random.default_rng(0)
    image_templates = []
    for _ in CAMERAS:
        msg = t.new_message("sensor_msgs/msg/Image")
        rgb = rng.integers(0, 255, (args.height, args.width, 3), dtype=np.uint8)
        messages.numpy_to_image(msg, rgb, "rgb8", stamp_s=0.0, frame_id=SEQ_MARK.decode())
        image_templates.append(_stamp_patcher(serialize(msg, "sensor_msgs/msg/Image")))
    js = t.new_message("sensor_msgs/msg/JointState")
    names = [f"fr3_joint{i}" for i in range(1, 8)] + ["fr3_finger_joint1", "fr3_finger_joint2"]
    messages.fill_joint_state(js, names, np.linspace(0, 1, 9), velocities=np.zeros(9), stamp_s=0.0)
    js.header.frame_id = SEQ_MARK.decode()
    js_template = _stamp_patcher(serialize(js, "sensor_msgs/msg/JointState"))
    sent = {topic: 0 for topic in (*CAMERAS, JOINT_STATES)}
    time.sleep(args.warmup)  # discovery and the recorder's start
    print("PUBLISHING", flush=True)
    cpu0, wall0 = time.process_time(), time.monotonic()
    stop_at = wall0 + args.duration

    def cameras() -> None:
        period, k = 1.0 / args.camera_rate, 0
        while True:
            due = wall0 + k * period
            if due >= stop_at:
                return
            delay = due - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            now = time.time()
            for topic, pub, template in zip(CAMERAS, cams, image_templates, strict=True):
                pub.publish(template(now, k))
                sent[topic] += 1
            k += 1

    thread = threading.Thread(target=cameras, daemon=True)
    thread.start()
    period, k = 1.0 / args.joint_rate, 0
    while True:
        due = wall0 + k * period
        if due >= stop_at:
            break
        delay = due - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        js_pub.publish(js_template(time.time(), k))
        sent[JOINT_STATES] += 1
        k += 1
    thread.join()
    wall = time.monotonic() - wall0
    cpu = time.process_time() - cpu0
    time.sleep(0.5)  # let reliable repairs finish before the writers go away
    print("RESULT " + json.dumps({"sent": sent, "wall_s": wall, "cpu_s": cpu}), flush=True)
    t.shutdown()
    return 0


# -- orchestration ----------------------------------------------------------------------------------------

def _proc_cpu_s(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _thread_cpu_s(pid: int) -> dict[str, float]:
    """CPU seconds per thread name of ``pid`` (threads with the same name summed)."""
    out: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            head, tail = (task / "stat").read_text().rsplit(")", 1)
        except OSError:
            continue
        name = head.split("(", 1)[1]
        if task.name == str(pid):
            name = "main"
        fields = tail.split()
        out[name] = out.get(name, 0.0) + (int(fields[11]) + int(fields[12])) / tick
    return out


def _udp_drops(pid: int) -> int:
    """Datagrams the kernel dropped on ``pid``'s UDP sockets (receive buffer full), from /proc/net/udp."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = os.readlink(fd)
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[8:-1])
    drops = 0
    for table in ("udp", "udp6"):
        try:
            lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) >= 13 and fields[9] in inodes:
                drops += int(fields[12])
    return drops


def _udp_rcvbuf_errors() -> int:
    """Datagrams the kernel dropped because a UDP socket's receive buffer was full (all sockets)."""
    try:
        lines = [line.split() for line in Path("/proc/net/snmp").read_text().splitlines() if line.startswith("Udp:")]
        return int(lines[1][lines[0].index("RcvbufErrors")])
    except (OSError, ValueError, IndexError):
        return 0


def run(args: argparse.Namespace) -> int:
    env = dict(os.environ, PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""),
               ROS_DOMAIN_ID=str(args.domain if args.domain is not None else 150 + os.getpid() % 50),
               PYTHONUNBUFFERED="1")
    os.environ["ROS_DOMAIN_ID"] = env["ROS_DOMAIN_ID"]
    from hpt_ros.ros import make_transport
    from hpt_ros.ros.transport import QOS_DEFAULT, QOS_LATCHED

    out = Path(tempfile.mkdtemp(prefix="bench_recorder_", dir=args.dir))
    recorder_log = out / "recorder.log"
    status: dict = {}
    procs: list[subprocess.Popen] = []
    ctl = make_transport("dds", "bench_control")
    try:
        cmd_pub = ctl.create_publisher("/hpt_recorder/command", "std_msgs/msg/String", QOS_DEFAULT)

        def on_status(msg) -> None:
            status.update(json.loads(msg.data))

        ctl.create_subscription("/hpt_recorder/status", "std_msgs/msg/String", on_status, QOS_LATCHED)
        spinner = threading.Thread(target=ctl.spin, daemon=True)
        spinner.start()

        def send(word: str) -> None:
            msg = ctl.new_message("std_msgs/msg/String")
            msg.data = word
            cmd_pub.publish(msg)

        def wait(pred, timeout: float, what: str) -> None:
            deadline = time.monotonic() + timeout
            while not pred():
                if time.monotonic() > deadline:
                    raise RuntimeError(f"timed out waiting for {what}; recorder log: {recorder_log}")
                time.sleep(0.05)

        if args.recorder_transport == "rclpy":
            command = [str(Path(sys.executable).parent / "teleop_recorder"), "--ros-args", "-p",
                       f"output_dir:={out / 'demos'}", "-p", "keyboard:=false", "-p", "status_period_s:=2.0",
                       *args.recorder_args]
        else:
            command = [sys.executable, "-m", "hpt_ros.cli", "record", "--output", str(out / "demos"), "--no-keyboard",
                       "--status-period", "2", *args.recorder_args]
        with recorder_log.open("w") as log:
            recorder = subprocess.Popen(command, env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT)
        procs.append(recorder)
        if args.recorder_nice:
            os.setpriority(os.PRIO_PROCESS, recorder.pid, args.recorder_nice)  # every thread: see --help
            for task in Path(f"/proc/{recorder.pid}/task").iterdir():
                os.setpriority(os.PRIO_PROCESS, int(task.name), args.recorder_nice)
        wait(lambda: status.get("state") == "idle", 60, "the recorder")
        publisher = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "--publish", "--duration", str(args.duration),
             "--width", str(args.width), "--height", str(args.height), "--camera-rate", str(args.camera_rate),
             "--joint-rate", str(args.joint_rate), "--warmup", "2.0", "--publisher-transport",
             args.publisher_transport],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, text=True)
        procs.append(publisher)
        send("start")
        wait(lambda: status.get("state") == "recording", 10, "the episode to start")
        assert publisher.stdout is not None
        line = publisher.stdout.readline()
        if not line.startswith("PUBLISHING"):
            raise RuntimeError(f"publisher failed: {line!r}")
        cpu0, wall0, udp0 = _proc_cpu_s(recorder.pid), time.monotonic(), _udp_rcvbuf_errors()
        threads0 = _thread_cpu_s(recorder.pid)
        result = None
        for line in publisher.stdout:
            if line.startswith("RESULT "):
                result = json.loads(line[7:])
                break
        rec_cpu, rec_wall = _proc_cpu_s(recorder.pid) - cpu0, time.monotonic() - wall0
        threads1 = _thread_cpu_s(recorder.pid)
        recorder_udp_drops = _udp_drops(recorder.pid)
        per_thread = sorted(((threads1[n] - threads0.get(n, 0.0), n) for n in threads1), reverse=True)
        publisher.wait(30)
        if result is None:
            raise RuntimeError("the publisher reported nothing")
        time.sleep(1.0)  # what is in flight reaches the recorder
        send("save")
        wait(lambda: status.get("saved") == 1 and status.get("state") == "idle", 120, "the episode to be saved")
        send("quit")
        recorder.wait(60)

        from mcap.reader import make_reader

        from hpt_ros.data import list_episodes

        episodes = list_episodes(out / "demos")
        info = episodes[0]
        rec = info.metadata.get("recorder", {})
        mcap_counts: dict[str, int] = {}
        seqs: dict[str, set[int]] = {topic: set() for topic in result["sent"]}
        with info.bag_files[0].open("rb") as f:  # the mcap library, independent of rosbags
            for _schema, channel, message in make_reader(f).iter_messages():
                mcap_counts[channel.topic] = mcap_counts.get(channel.topic, 0) + 1
                if channel.topic in seqs:
                    seqs[channel.topic].add(sequence_number(message.data))
        size_mb = info.bag_files[0].stat().st_size / 1e6

        print(f"\n=== teleop recorder benchmark: {args.duration:g} s, 2 x {args.width}x{args.height} rgb8 @ "
              f"{args.camera_rate:g} Hz + JointState @ {args.joint_rate:g} Hz from {args.publisher_transport} "
              f"to the {args.recorder_transport} recorder (loopback), 2 cores ===")
        print(f"{'topic':40s} {'sent':>7s} {'in bag':>7s} {'mcap':>7s} {'missing':>8s} {'dropped':>8s} {'lost':>5s}"
              "  where missing")
        bad = 0
        for topic, n_sent in result["sent"].items():
            got = info.message_counts.get(topic, 0)
            per = rec.get("topics", {}).get(topic, {})
            missing = sorted(set(range(n_sent)) - seqs[topic])
            bad += len(missing) + per.get("dropped", 0)
            print(f"{topic:40s} {n_sent:7d} {got:7d} {mcap_counts.get(topic, 0):7d} {len(missing):8d} "
                  f"{per.get('dropped', 0):8d} {per.get('lost', 0):5d}  {_where(missing, n_sent)}")
        total_sent = sum(result["sent"].values())
        total_got = sum(info.message_counts.get(t, 0) for t in result["sent"])
        print(f"{'total':40s} {total_sent:7d} {total_got:7d}")
        udp = _udp_rcvbuf_errors() - udp0
        mb_s = (args.width * args.height * 3 * 2 * args.camera_rate) / 1e6
        print(f"\nrecorder CPU: {rec_cpu / rec_wall:.2f} of a core over the publishing window "
              f"({rec_cpu:.1f} s CPU / {rec_wall:.1f} s wall; episode.yaml says {rec.get('cpu_fraction')}); "
              f"writer queue peak {rec.get('max_queued_mb')} MB")
        print("recorder threads (CPU / wall): " + ", ".join(
            f"{name} {cpu / rec_wall:.2f}" for cpu, name in per_thread if cpu > 0))
        print(f"publisher CPU: {result['cpu_s'] / result['wall_s']:.2f} of a core; camera payload {mb_s:.1f} MB/s; "
              f"bag {size_mb:.0f} MB ({size_mb / max(info.duration_s or 1, 1e-9):.1f} MB/s of episode)")
        print(f"received / sent: {total_got}/{total_sent} = {total_got / max(total_sent, 1):.4f}; "
              f"UDP datagrams dropped by the kernel (socket buffer full): {recorder_udp_drops} on the recorder's "
              f"sockets, {udp} on the whole host meanwhile")
        if bad:
            print(f"\nFAIL: {bad} message(s) missing or dropped (recorder log: {recorder_log})")
            return 1
        print("\nOK: no message dropped")
        return 0
    finally:
        ctl.shutdown()
        stop_children(procs, signal.SIGTERM, timeout_s=10)
        if not args.keep:
            import shutil

            shutil.rmtree(out, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of publishing (default 10)")
    parser.add_argument("--width", type=int, default=640)
    parser.add_argument("--height", type=int, default=480)
    parser.add_argument("--camera-rate", type=float, default=30.0)
    parser.add_argument("--joint-rate", type=float, default=1000.0)
    parser.add_argument("--dir", default=None, help="where the bag goes (default: a temporary folder)")
    parser.add_argument("--keep", action="store_true", help="keep the bag and logs")
    parser.add_argument("--domain", type=int, default=None, help="ROS_DOMAIN_ID (default 150 + pid %% 50)")
    parser.add_argument("--recorder-nice", type=int, default=0,
                        help="nice value for the recorder's threads (negative: needs root), to test CPU contention")
    parser.add_argument("--recorder-args", nargs=argparse.REMAINDER, default=[],
                        help="extra arguments for hpt-ros record (e.g. --no-fsync)")
    parser.add_argument("--publisher-transport", choices=("dds", "rclpy"), default="dds",
                        help="transport of the publisher process (rclpy: run with a ROS 2 wheel venv)")
    parser.add_argument("--recorder-transport", choices=("dds", "rclpy"), default="dds",
                        help="transport of the recorder (rclpy: run with a ROS 2 wheel venv)")
    parser.add_argument("--publish", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--warmup", type=float, default=2.0, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.publish:
        return publish(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
