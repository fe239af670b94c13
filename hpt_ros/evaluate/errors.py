"""Errors of the replay evaluation: each names the bag and, where one is involved, the topic."""

from __future__ import annotations

from os import PathLike

__all__ = ["EvaluationError"]


class EvaluationError(ValueError):
    """One bag cannot be evaluated: ``bag`` is the bag, ``topic`` the topic involved (or None)."""

    def __init__(self, bag: str | PathLike[str], detail: str, *, topic: str | None = None):
        self.bag = str(bag)
        self.topic = topic
        self.detail = detail
        where = f"{self.bag}: topic {topic!r}" if topic else self.bag
        super().__init__(f"{where}: {detail}")
