"""Which recorded episodes a dataset uses, how they split into training and validation, and
the identity of an episode's bag (what the feature cache is keyed on)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from .episodes import EpisodeInfo, list_episodes, read_episode

__all__ = ["bag_fingerprint", "select_episodes", "split_episodes"]


def select_episodes(
    roots: str | Path | Sequence[str | Path], *, only_success: bool = False
) -> tuple[list[EpisodeInfo], list[tuple[EpisodeInfo, str]]]:
    """(used, [(skipped, reason)]) among the episodes under ``roots``.

    Each root is a recording folder (``episode_NNNN`` folders inside) or one episode
    folder. Used: every saved episode (``complete``, or ``recovered`` by ``hpt-ros bag
    repair``); with ``only_success`` only those marked ``success: true``. Skipped: an
    episode needing repair (its recorder was killed: run ``hpt-ros bag repair``), one
    still being written (``complete: false``), one with an unreadable episode.yaml or
    without a bag, and with ``only_success`` those with ``success`` false or unset.
    """
    if isinstance(roots, (str, Path)):
        roots = [roots]
    found: list[EpisodeInfo] = []
    for root in roots:
        root = Path(root)
        if not root.exists():
            raise FileNotFoundError(f"{root}: no such episode folder")
        inside = list_episodes(root)
        if inside:
            found.extend(inside)
        else:
            try:
                found.append(read_episode(root))
            except FileNotFoundError:
                raise FileNotFoundError(f"{root}: holds no episodes (episode_NNNN folders with bags)") from None
    used, skipped = [], []
    for info in found:
        if info.error:
            skipped.append((info, f"unreadable episode.yaml: {info.error}"))
        elif not info.bag_files:
            skipped.append((info, "no bag file"))
        elif info.needs_repair:
            skipped.append((info, "recorder was killed: run 'hpt-ros bag repair' on it first"))
        elif not (info.complete or info.recovered):
            skipped.append((info, "not complete (still being recorded?)"))
        elif only_success and info.success is not True:
            skipped.append((info, f"success is {info.success} (--only-success)"))
        else:
            used.append(info)
    return used, skipped


def split_episodes(names: Sequence[str], val_fraction: float, seed: int = 0) -> tuple[list[str], list[str]]:
    """(train, validation) names: a deterministic, seeded split by episode.

    Episodes are ranked by ``sha256(f"{seed}:{name}")`` and the first
    ``round(val_fraction * n)`` (at least 1 when ``val_fraction > 0`` and n >= 2, never
    all) go to validation, so the split depends on the names and the seed only, not on
    the listing order, and adding an episode moves at most one other.
    """
    if not 0.0 <= val_fraction < 1.0:
        raise ValueError(f"val_fraction must be in [0, 1), got {val_fraction}")
    names = sorted(set(names))
    n = len(names)
    n_val = int(round(val_fraction * n))
    if val_fraction > 0 and n >= 2:
        n_val = min(max(n_val, 1), n - 1)
    else:
        n_val = 0
    ranked = sorted(names, key=lambda s: hashlib.sha256(f"{seed}:{s}".encode()).hexdigest())
    val = set(ranked[:n_val])
    return [s for s in names if s not in val], [s for s in names if s in val]


def bag_fingerprint(info: EpisodeInfo, head_bytes: int = 1 << 20) -> str:
    """Identity of an episode's recording: per storage file its name, size and the sha256 of
    its first and last ``head_bytes`` (survives copying; changes when the bag is rewritten)."""
    digest = hashlib.sha256()
    for file in sorted(info.bag_files):
        size = file.stat().st_size
        digest.update(f"{file.name}:{size}:".encode())
        with file.open("rb") as handle:
            digest.update(handle.read(head_bytes))
            if size > head_bytes:
                handle.seek(max(size - head_bytes, head_bytes))
                digest.update(handle.read(head_bytes))
    return digest.hexdigest()
