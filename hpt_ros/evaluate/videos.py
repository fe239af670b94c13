"""Per-episode videos of a replay evaluation: the cameras beside the predicted and recorded actions.

One frame per control tick (at the control rate): the bag's camera views as the policy saw
them at that tick (the latest frame at or before it), with the tick time and, when safety
held the tick, the reason; below them the episode's action plot (``plots.episode_figure``)
with a cursor at the tick. The plot is drawn once and the cursor is painted per frame, so
a video costs little more than encoding it. Written as H.264 mp4 (plays in browsers and
editors) through PyAV where the encoder exists, else MPEG-4 Part 2.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from hpt_ros.spec import RobotSpec

from .actions import ActionLayout
from .episode import EpisodeResult

__all__ = ["VIDEO_ENCODERS", "write_replay_video"]

#: tried in order: H.264 first (browsers play it), MPEG-4 Part 2 as the last resort
VIDEO_ENCODERS = ("libx264", "libopenh264", "mpeg4")
_CAMERA_HEIGHT = 320
_MIN_WIDTH = 640
_CURSOR = (200, 30, 30)


def _even(n: int) -> int:
    return n + (n % 2)


def _encoder() -> str:
    from hpt_ros.data.lerobot_format import choose_encoder

    for name in VIDEO_ENCODERS:
        try:
            return choose_encoder(name)[0]
        except ValueError:
            continue
    raise ValueError(f"this PyAV build has none of the video encoders {list(VIDEO_ENCODERS)}")


def _camera_frames(reader: Any, spec: RobotSpec, tick_ns: np.ndarray) -> Iterator[list[np.ndarray | None]]:
    """Per tick, each camera's latest frame at or before it (None before its first); decoded once each."""
    from hpt_ros.msgs import messages
    from hpt_ros.ros.replay import decode_bag_message

    cameras = [s for s in spec.image_sensors if s.topic in reader.topics]
    index = {s.topic: i for i, s in enumerate(cameras)}
    pending: list[Any] = [None] * len(cameras)  # latest raw message per camera, not yet decoded
    current: list[np.ndarray | None] = [None] * len(cameras)

    def frames() -> list[np.ndarray | None]:
        for i, item in enumerate(pending):
            if item is not None:
                msg = decode_bag_message(reader, item.topic, item.msgtype, item.rawdata)
                convert = (messages.compressed_image_to_rgb if item.msgtype.endswith("CompressedImage")
                           else messages.image_to_rgb)
                current[i] = convert(msg, topic=item.topic)
                pending[i] = None
        return list(current)

    k = 0
    for item in reader.messages([s.topic for s in cameras]) if cameras else ():
        while k < len(tick_ns) and tick_ns[k] < item.timestamp_ns:
            yield frames()
            k += 1
        pending[index[item.topic]] = item
    while k < len(tick_ns):
        yield frames()
        k += 1


class _PlotCanvas:
    """The episode's action plot as pixels, and where each tick's cursor goes on it."""

    def __init__(self, result: EpisodeResult, layout: ActionLayout, title: str, period_s: float, width: int):
        from .plots import episode_figure, episode_grid

        rows, _ = episode_grid(layout.dim)
        height = _even(int(110 * rows + 70))
        fig, axes = episode_figure(result, layout, title, period_s, size_in=(width / 80, height / 80))
        fig.canvas.draw()
        self.image = np.ascontiguousarray(np.asarray(fig.canvas.buffer_rgba())[..., :3])
        h = self.image.shape[0]
        # per axes: (x pixel of each tick, top row, bottom row); display coordinates start at the bottom
        self.cursors = []
        for ax in axes:
            xs = ax.transData.transform(np.column_stack([result.tick_s, np.zeros(len(result.tick_s))]))[:, 0]
            box = ax.bbox
            self.cursors.append((np.round(xs).astype(int), int(h - box.y1), int(h - box.y0)))

    def at(self, k: int) -> np.ndarray:
        import cv2

        img = self.image.copy()
        for xs, top, bottom in self.cursors:
            cv2.line(img, (int(xs[k]), top), (int(xs[k]), bottom), _CURSOR, 1)
        return img


def _camera_row(frames: list[np.ndarray | None], sizes: list[tuple[int, int]], t: float, reason: str) -> np.ndarray:
    import cv2

    tiles = []
    for frame, (w, h) in zip(frames, sizes):
        tiles.append(np.zeros((h, w, 3), np.uint8) if frame is None
                     else cv2.resize(frame, (w, h), interpolation=cv2.INTER_NEAREST))
    row = np.concatenate(tiles, axis=1) if tiles else np.zeros((_CAMERA_HEIGHT, _MIN_WIDTH, 3), np.uint8)
    row = np.ascontiguousarray(row)
    cv2.putText(row, f"t={t:5.2f} s", (8, 22), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 2, cv2.LINE_AA)
    if reason:
        cv2.putText(row, f"held: {reason}", (8, 48), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 80, 80), 2, cv2.LINE_AA)
    return row


def _frame_size(reader: Any, topic: str) -> tuple[int, int]:
    """(width, height) of the first message on ``topic``."""
    from hpt_ros.ros.replay import decode_bag_message

    for item in reader.messages([topic]):
        msg = decode_bag_message(reader, item.topic, item.msgtype, item.rawdata)
        if item.msgtype.endswith("CompressedImage"):
            from hpt_ros.msgs import messages

            h, w = messages.compressed_image_to_rgb(msg, topic=topic).shape[:2]
            return w, h
        return int(msg.width), int(msg.height)
    return 4, 3


def write_replay_video(bag: str | Path, spec: RobotSpec, result: EpisodeResult, layout: ActionLayout, path: Path,
                       title: str, *, distro: str | None = None, recover: bool = False) -> int:
    """Write ``path`` (mp4, one frame per control tick at the spec's rate); returns the number of frames."""
    from hpt_ros.data import open_bag
    from hpt_ros.data.lerobot_format import VideoWriter

    with open_bag(bag, distro=distro, recover=recover) as reader:
        sizes = []
        for s in spec.image_sensors:
            if s.topic in reader.topics:
                w, h = _frame_size(reader, s.topic)
                sizes.append((max(2, round(_CAMERA_HEIGHT * w / max(1, h))), _CAMERA_HEIGHT))
        width = _even(max(_MIN_WIDTH, sum(w for w, _ in sizes)))
        canvas = _PlotCanvas(result, layout, title, spec.period_s, width)
        plot_h, plot_w = canvas.image.shape[:2]
        plot_h, plot_w = plot_h - plot_h % 2, min(plot_w, width)  # yuv420p wants even sizes
        writer = VideoWriter(path, _encoder(), width, _CAMERA_HEIGHT + plot_h, spec.rate_hz, crf=28)
        try:
            for k, frames in enumerate(_camera_frames(reader, spec, result.tick_ns)):
                top = _camera_row(frames, sizes, float(result.tick_s[k]), result.reasons[k])
                frame = np.zeros((_CAMERA_HEIGHT + plot_h, width, 3), np.uint8)
                frame[:_CAMERA_HEIGHT, : min(width, top.shape[1])] = top[:, :width]
                frame[_CAMERA_HEIGHT:, :plot_w] = canvas.at(k)[:plot_h, :plot_w]
                writer.write(frame)
        finally:
            writer.close()
    return writer.frames
