"""Errors raised while loading or validating a robot spec."""

from __future__ import annotations

__all__ = ["SpecError"]


class SpecError(ValueError):
    """One mistake in a robot spec: the file, the key path, what was expected, what was found."""

    def __init__(self, file: str, key_path: str, expected: str, found: object):
        self.file = file
        self.key_path = key_path
        self.expected = expected
        self.found = found
        super().__init__(f"{file}: {key_path}: expected {expected}, found {found!r}")
