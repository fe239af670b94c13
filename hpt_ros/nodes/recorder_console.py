"""The recorder's terminal: single-key episode control and a status line redrawn in place.

Both act only when the stream is a terminal (``isatty()``): under ``ros2 launch``, in a
script or in a test, keys are off and the status goes to periodic log lines instead.

Keys (no Enter needed; the terminal is put in cbreak mode, so Ctrl-C still works, and
restored on exit)::

    s            start an episode
    Enter/space  save it (success)
    f            save it as a failure
    d            discard it
    r            discard it and start again
    q            quit (an episode being recorded is saved first)
"""

from __future__ import annotations

import os
import select
import shutil
import sys
import threading
from collections.abc import Callable
from typing import TextIO

__all__ = ["KEYS", "KEY_HELP", "KeyReader", "StatusLine"]

#: key -> recorder command
KEYS: dict[str, str] = {
    "s": "start",
    "\n": "save",
    "\r": "save",
    " ": "save",
    "f": "save_failure",
    "d": "discard",
    "r": "restart",
    "q": "quit",
}

KEY_HELP = "[s]tart [enter]save [f]ail [d]iscard [r]estart [q]uit"


class KeyReader:
    """Reads single keys from a terminal's stdin and calls ``on_command(command)`` for known keys.

    ``start()`` does nothing (and returns False) when stdin is not a terminal.
    """

    def __init__(self, on_command: Callable[[str], None], stream: TextIO | None = None):
        self._on_command = on_command
        self._stream = stream if stream is not None else sys.stdin
        self._saved_attrs: list | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._fd: int | None = None

    def start(self) -> bool:
        try:
            if not self._stream.isatty():
                return False
            fd = self._stream.fileno()
        except (AttributeError, OSError, ValueError):
            return False
        try:
            foreground = os.tcgetpgrp(fd)
        except OSError:  # not our controlling terminal: no job control applies
            foreground = None
        if foreground is not None and foreground != os.getpgrp():
            return False  # a background job: changing the terminal's mode would stop it (SIGTTOU)
        import termios
        import tty

        try:
            self._saved_attrs = termios.tcgetattr(fd)
            tty.setcbreak(fd)
        except termios.error:
            return False
        self._fd = fd
        self._thread = threading.Thread(target=self._run, name="recorder-keys", daemon=True)
        self._thread.start()
        return True

    def _run(self) -> None:
        assert self._fd is not None
        while not self._stop.is_set():
            try:
                ready, _, _ = select.select([self._fd], [], [], 0.2)
                if not ready:
                    continue
                data = os.read(self._fd, 32)
            except (OSError, ValueError):
                return
            if not data:
                return  # stdin closed
            for char in data.decode(errors="ignore"):
                command = KEYS.get(char.lower() if char.isalpha() else char)
                if command is not None:
                    self._on_command(command)

    def stop(self) -> None:
        """Stop reading and restore the terminal. Idempotent."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(1.0)
        self._thread = None
        if self._saved_attrs is not None and self._fd is not None:
            import termios

            try:
                termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved_attrs)
            except termios.error:
                pass
            self._saved_attrs = None


class StatusLine:
    """One line redrawn in place on a terminal (``\\r`` + erase line), cut to the terminal width."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream if stream is not None else sys.stderr
        try:
            self.enabled = bool(self.stream.isatty())
        except (AttributeError, ValueError):
            self.enabled = False
        self._shown = False
        self._lock = threading.Lock()

    def show(self, text: str) -> None:
        if not self.enabled:
            return
        width = shutil.get_terminal_size((120, 24)).columns
        if len(text) >= width:
            text = text[: max(width - 2, 1)] + "…"
        with self._lock:
            self.stream.write("\r\x1b[2K" + text)
            self.stream.flush()
            self._shown = True

    def clear(self) -> None:
        """Erase the line (before a log line is printed, so the two do not mix)."""
        if not self.enabled:
            return
        with self._lock:
            if self._shown:
                self.stream.write("\r\x1b[2K")
                self.stream.flush()
                self._shown = False
