"""Episode folders: listing, next index, episode.yaml round trip."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpt_ros.data import (
    EpisodeWriter,
    episode_path,
    list_episodes,
    next_episode_index,
    read_episode,
    read_episode_yaml,
)

TOPICS = {"/chatter": "std_msgs/msg/String"}
CDR = b"\x00\x01\x00\x00\x06\x00\x00\x00hello\x00"  # std_msgs/String 'hello'


def _record(root: Path, index: int, **close: object) -> None:
    writer = EpisodeWriter(
        episode_path(root, index), TOPICS,
        {"task": "wave", "episode_index": index, "operator": "bo", "spec_hash": "h"},
        min_free_bytes=0, fsync=False,
    )
    writer.write("/chatter", 10 + index, CDR)
    writer.close(**close)  # type: ignore[arg-type]


def test_empty_and_missing_roots(tmp_path: Path) -> None:
    assert list_episodes(tmp_path / "nowhere") == []
    assert next_episode_index(tmp_path / "nowhere") == 0
    assert list_episodes(tmp_path) == []
    assert next_episode_index(tmp_path) == 0


def test_list_and_next_index(tmp_path: Path) -> None:
    _record(tmp_path, 0, success=True)
    _record(tmp_path, 1, success=False, notes="dropped the cup")
    _record(tmp_path, 5)
    (tmp_path / "not_an_episode").mkdir()
    (tmp_path / "README.txt").write_text("demos")
    crashed = episode_path(tmp_path, 7)  # a killed recorder: MCAP only
    crashed.mkdir()
    (crashed / "episode_0007.mcap").write_bytes(b"\x89MCAP0\r\n")

    episodes = list_episodes(tmp_path)
    assert [e.episode_index for e in episodes] == [0, 1, 5, 7]
    first, second, third, fourth = episodes
    assert first.success is True and first.task == "wave" and first.operator == "bo"
    assert first.message_counts == {"/chatter": 1} and first.complete and not first.needs_repair
    assert first.bag_files == (first.path / "episode_0000.mcap",)
    assert second.success is False and second.notes == "dropped the cup"
    assert third.success is None and third.spec_hash == "h"
    assert fourth.needs_repair and not fourth.complete and fourth.task is None
    assert next_episode_index(tmp_path) == 8
    assert read_episode(first.path) == first
    with pytest.raises(FileNotFoundError):
        read_episode(tmp_path / "not_an_episode")


def test_index_from_episode_yaml_beats_folder_name(tmp_path: Path) -> None:
    writer = EpisodeWriter(tmp_path / "take_a", TOPICS, {"episode_index": 12}, min_free_bytes=0, fsync=False)
    writer.close()
    assert next_episode_index(tmp_path) == 13
    assert list_episodes(tmp_path)[0].episode_index == 12


def test_malformed_episode_yaml_is_reported_not_fatal(tmp_path: Path) -> None:
    _record(tmp_path, 0)
    (episode_path(tmp_path, 0) / "episode.yaml").write_text("task: [unclosed\n")
    [info] = list_episodes(tmp_path)
    assert info.error is not None and "episode.yaml" in info.error
    assert info.episode_index == 0  # from the folder name
    with pytest.raises(ValueError, match="episode.yaml"):
        read_episode_yaml(info.path)
    assert next_episode_index(tmp_path) == 1


def test_episode_path() -> None:
    assert episode_path("demos", 3) == Path("demos/episode_0003")
    with pytest.raises(ValueError):
        episode_path("demos", -1)
