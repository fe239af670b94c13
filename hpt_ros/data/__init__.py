"""Bags and episodes: reading rosbag2 bags, recording one bag per episode, repairing crashes.

- ``open_bag(path)`` reads rosbag2 directories (metadata.yaml versions 1-9, sqlite3 or
  mcap) and bare ``.mcap`` / ``.db3`` files, in timestamp order, and deserialises
  messages into rosbags dataclasses (ROS 2 field names).
- ``EpisodeWriter`` records raw CDR messages into a rosbag2 bag with mcap storage plus
  ``episode.yaml``; a SIGKILL loses at most the last flush interval (0.5 s).
- ``repair_bag(path)`` rewrites a killed writer's bag into a valid one, keeping the original.
- ``list_episodes(dir)`` / ``next_episode_index(dir)`` manage a folder of episodes.

Everything raises ``BagError`` subclasses (``ValueError``) naming the bag and topic.
"""

from .bag_reader import BagMessage, BagReader, TopicInfo, open_bag
from .episode_writer import DEFAULT_MIN_FREE_BYTES, EpisodeWriter, estimate_episode_bytes
from .episodes import (
    EPISODE_FILE,
    EpisodeInfo,
    episode_path,
    list_episodes,
    next_episode_index,
    read_episode,
    read_episode_yaml,
)
from .dataset import (
    ActionSource,
    DatasetError,
    SampleSet,
    action_chunks,
    bag_fingerprint,
    build_episode,
    default_cache_dir,
    fill_actions,
    iter_ticks,
    load_episodes,
    select_episodes,
    split_episodes,
)
from .errors import (
    BagError,
    BagOpenError,
    BagTopicError,
    BagTruncatedError,
    BagWriteError,
    EpisodeExistsError,
    InsufficientSpaceError,
)
from .repair import RepairReport, repair_bag
from .typestores import distro_typestore, normalize_msgtype, same_msgtype

__all__ = [
    "ActionSource",
    "DatasetError",
    "SampleSet",
    "action_chunks",
    "bag_fingerprint",
    "build_episode",
    "default_cache_dir",
    "fill_actions",
    "iter_ticks",
    "load_episodes",
    "select_episodes",
    "split_episodes",
    "DEFAULT_MIN_FREE_BYTES",
    "EPISODE_FILE",
    "BagError",
    "BagMessage",
    "BagOpenError",
    "BagReader",
    "BagTopicError",
    "BagTruncatedError",
    "BagWriteError",
    "EpisodeExistsError",
    "EpisodeInfo",
    "EpisodeWriter",
    "InsufficientSpaceError",
    "RepairReport",
    "TopicInfo",
    "distro_typestore",
    "episode_path",
    "estimate_episode_bytes",
    "list_episodes",
    "next_episode_index",
    "normalize_msgtype",
    "open_bag",
    "read_episode",
    "read_episode_yaml",
    "repair_bag",
    "same_msgtype",
]
