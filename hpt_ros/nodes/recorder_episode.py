"""The episode being recorded: a queue between the receive path and the bag writer.

The transport's message thread only appends ``(topic, receive time, CDR bytes)`` to the
queue of the current episode (:meth:`RecordingEpisode.put`, a few microseconds); a writer
thread takes batches out and hands them to :class:`~hpt_ros.data.EpisodeWriter`. So a
slow disk (page-cache writeback, fsync, a full chunk being copied) never blocks the
receive path, and a receive burst never waits for the disk.

The queue is bounded in bytes (``max_queue_bytes``): when the disk cannot keep up for
that long, further messages are counted as ``dropped`` (per topic) instead of growing
memory without limit. After SIGKILL the queue (normally a few milliseconds of data) and
the writer's last flush interval (0.5 s) are what is lost.
"""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter, deque
from pathlib import Path
from typing import Any

from hpt_ros.data import EpisodeInfo, EpisodeWriter

__all__ = ["DEFAULT_MAX_QUEUE_BYTES", "RecordingEpisode", "set_native_thread_name"]

#: Memory the queue may hold before messages are dropped (about 9 s of two 640x480 rgb8 cameras at 30 Hz).
DEFAULT_MAX_QUEUE_BYTES = 512 << 20


def set_native_thread_name(name: str) -> None:
    """Name the calling thread for the OS (``top -H``, ``/proc/PID/task/*/comm``; Linux, 15 chars).

    Best effort: lets a profiler or the benchmark tell the receive and writer threads apart."""
    if not sys.platform.startswith("linux"):
        return
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(15, name.encode()[:15] + b"\0", 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


class RecordingEpisode:
    """One episode: its writer, its queue, its writer thread and its counters.

    ``put`` may be called from any thread; ``stop`` drains the queue into the bag and stops
    the writer thread (the bag is then closed or discarded by the caller through ``writer``).
    """

    def __init__(self, writer: EpisodeWriter, index: int, start_time: float, *,
                 max_queue_bytes: int = DEFAULT_MAX_QUEUE_BYTES):
        self.writer = writer
        self.index = index
        self.start_time = start_time  # transport clock [s]
        self.max_queue_bytes = int(max_queue_bytes)
        self.received: Counter[str] = Counter()  # put and accepted
        self.dropped: Counter[str] = Counter()  # refused: queue full or writer failed
        self.late: Counter[str] = Counter()
        self.lost_at_start: dict[str, int] = {}  # DDS sample-lost counters when the episode began
        self.notes: str | None = None
        self.error: BaseException | None = None
        self.max_queued_bytes = 0
        self.cpu_start = time.process_time()
        self.wall_start = time.monotonic()
        self._queue: deque[tuple[str, int, Any]] = deque()
        self._queued_bytes = 0
        self._cond = threading.Condition(threading.Lock())
        self._open = True
        self._thread = threading.Thread(target=self._run, name=f"writer {Path(writer.path).name}", daemon=True)
        self._thread.start()

    @property
    def path(self) -> Path:
        return Path(self.writer.path)

    @property
    def queued_bytes(self) -> int:
        return self._queued_bytes

    # -- receive path ------------------------------------------------------------------
    def put(self, topic: str, timestamp_ns: int, data: Any) -> bool:
        """Queue one message; False (and counted as dropped) if it cannot be recorded."""
        size = len(data)
        with self._cond:
            if not self._open:
                return False
            if self.error is not None or self._queued_bytes + size > self.max_queue_bytes:
                self.dropped[topic] += 1
                return False
            self._queue.append((topic, timestamp_ns, data))
            self._queued_bytes += size
            if self._queued_bytes > self.max_queued_bytes:
                self.max_queued_bytes = self._queued_bytes
            self.received[topic] += 1
            self._cond.notify()
        return True

    # -- writer thread -------------------------------------------------------------------
    def _run(self) -> None:
        set_native_thread_name("hpt-rec-writer")
        write = self.writer.write
        while True:
            with self._cond:
                while not self._queue and self._open:
                    self._cond.wait(0.2)
                if not self._queue:
                    return  # closed and drained
                batch = list(self._queue)
                self._queue.clear()
            written = done = 0
            try:
                for topic, stamp, data in batch:
                    write(topic, stamp, data)
                    written += len(data)
                    done += 1
            except BaseException as exc:  # noqa: BLE001 - reported by the node, which stops
                with self._cond:
                    self.error = exc
                    for item in batch[done:]:
                        self.dropped[item[0]] += 1
                        self.received[item[0]] -= 1
                    self._queue.clear()
                    self._queued_bytes = 0
                    self._open = False
                return
            with self._cond:
                self._queued_bytes -= written

    def stop(self, timeout_s: float = 60.0) -> None:
        """Refuse new messages, write every queued one, stop the writer thread."""
        with self._cond:
            self._open = False
            self._cond.notify_all()
        self._thread.join(timeout_s)

    # -- summary ---------------------------------------------------------------------------
    def cpu_fraction(self) -> float:
        """Process CPU time / wall time since the episode started (all threads of the process)."""
        wall = time.monotonic() - self.wall_start
        return (time.process_time() - self.cpu_start) / wall if wall > 0 else 0.0

    def close(self, **metadata: Any) -> EpisodeInfo:
        """Stop, then finish the bag with ``metadata`` (success, notes, ended_by, ...)."""
        self.stop()
        return self.writer.close(**metadata)

    def discard(self) -> None:
        """Stop, then delete the episode folder."""
        self.stop()
        self.writer.discard()
