"""Errors raised while reading, writing or repairing rosbag2 bags, and building datasets from them.

Every message names the bag (directory or file) and, where one is involved, the topic,
so that a failure in a long recording session says which file to look at.
"""

from __future__ import annotations

from os import PathLike

__all__ = [
    "BagError",
    "BagOpenError",
    "BagTopicError",
    "BagTruncatedError",
    "BagWriteError",
    "DatasetError",
    "EpisodeExistsError",
    "InsufficientSpaceError",
]


class BagError(ValueError):
    """A problem with one bag: ``path`` is the bag, ``topic`` the topic involved (or None)."""

    def __init__(self, path: str | PathLike[str], detail: str, *, topic: str | None = None):
        self.path = str(path)
        self.topic = topic
        self.detail = detail
        where = f"{self.path}: topic {topic!r}" if topic else self.path
        super().__init__(f"{where}: {detail}")


class BagOpenError(BagError):
    """The bag cannot be opened: missing files, unknown storage, unreadable metadata.yaml."""


class BagTopicError(BagError):
    """A topic is missing, has an unexpected message type, or cannot be (de)serialised."""


class BagTruncatedError(BagError):
    """A storage file ends early or is corrupt (e.g. its writer was killed).

    ``open_bag(path, recover=True)`` reads every complete message; ``repair_bag(path)``
    rewrites the bag so that every tool can read it.
    """


class BagWriteError(BagError):
    """An episode cannot be written (directory not writable, writer closed, bad input)."""


class EpisodeExistsError(BagWriteError):
    """The episode directory already exists; episodes are never overwritten."""


class InsufficientSpaceError(BagWriteError):
    """Less free disk space than the episode is expected to need."""


class DatasetError(ValueError):
    """An episode cannot be turned into samples (names the episode and the reason)."""
