"""Exceptions raised by the HPT model layer.

Every error that concerns a file names it; checkpoint mismatches list the offending
keys (missing, unexpected, wrong shape) so a user can see at once what does not fit.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

__all__ = [
    "CheckpointError",
    "ConfigError",
    "ModelError",
    "PretrainedNotFoundError",
    "ShapeMismatch",
]

# Long key lists (a whole XLarge trunk has 448 keys) are cut in the message; the full
# lists stay available on the exception object.
_MAX_LISTED = 40

ShapeMismatch = tuple[str, tuple[int, ...], tuple[int, ...]]
"""(key, shape in the file, shape the model expects)."""


class ModelError(Exception):
    """Base class of all hpt_ros.model errors."""


class ConfigError(ModelError, ValueError):
    """An HPT configuration is invalid or uses an unsupported upstream option."""


class PretrainedNotFoundError(ModelError, FileNotFoundError):
    """A pretrained source (local folder or Hugging Face hub id) cannot be resolved."""


def _listing(title: str, items: Sequence[str]) -> str:
    shown = list(items[:_MAX_LISTED])
    more = len(items) - len(shown)
    text = f"  {title} ({len(items)}): " + ", ".join(shown)
    if more > 0:
        text += f", ... and {more} more"
    return text


class CheckpointError(ModelError, ValueError):
    """A checkpoint file cannot be read or does not fit the model.

    Attributes:
        file: the file (or folder) concerned.
        missing: keys the model needs that the file lacks.
        unexpected: keys in the file the model does not have.
        mismatched: (key, file shape, model shape) for keys whose shapes differ.
    """

    def __init__(
        self,
        file: str | Path,
        problem: str,
        *,
        missing: Iterable[str] = (),
        unexpected: Iterable[str] = (),
        mismatched: Iterable[ShapeMismatch] = (),
    ) -> None:
        self.file = Path(file)
        self.problem = problem
        self.missing = list(missing)
        self.unexpected = list(unexpected)
        self.mismatched = list(mismatched)
        lines = [f"{self.file}: {problem}"]
        if self.missing:
            lines.append(_listing("missing keys", self.missing))
        if self.unexpected:
            lines.append(_listing("unexpected keys", self.unexpected))
        if self.mismatched:
            lines.append(
                _listing(
                    "shape mismatches",
                    [f"{k} file {tuple(f)} vs model {tuple(m)}" for k, f, m in self.mismatched],
                )
            )
        super().__init__("\n".join(lines))
