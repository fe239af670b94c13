"""Errors of the replay evaluation: each names the bag and, where any are involved, the topics."""

from __future__ import annotations

from collections.abc import Sequence
from os import PathLike

__all__ = ["EvaluationError"]


class EvaluationError(ValueError):
    """One bag cannot be evaluated: ``bag`` is the bag, ``topic`` the topic involved (or None).

    ``topics``: every topic involved when there are several (``topic`` is then the first).
    """

    def __init__(self, bag: str | PathLike[str], detail: str, *, topic: str | None = None,
                 topics: Sequence[str] | None = None):  # fmt: skip
        self.bag = str(bag)
        self.topics = list(topics) if topics else ([topic] if topic else [])
        self.topic = topic or (self.topics[0] if self.topics else None)
        self.detail = detail
        if len(self.topics) > 1:
            where = f"{self.bag}: topics {', '.join(repr(t) for t in self.topics)}"
        else:
            where = f"{self.bag}: topic {self.topic!r}" if self.topic else self.bag
        super().__init__(f"{where}: {detail}")
