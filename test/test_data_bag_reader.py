"""Reading real rosbag2 bags made by other tools and odd layouts.

The real bags are ``../shared/fixtures/bags`` (conftest's ``bag_fixtures``: skipped when
absent, a failure when absent under ``CI=true``).
"""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

import pytest
import yaml
from rosbags.rosbag2 import CompressionFormat, CompressionMode, Reader, StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore

from hpt_ros.data import (
    BagOpenError,
    BagTopicError,
    BagTruncatedError,
    TopicInfo,
    open_bag,
)

TALKERS = ["rosbag2_sqlite3_talker", "rosbag2_mcap_talker"]
RS_BAGS = ["rosbags_rs_test_bag_mcap", "rosbags_rs_test_bag_sqlite3"]


def _storage_file(folder: Path) -> Path:
    (file,) = [p for p in folder.iterdir() if p.suffix in (".mcap", ".db3")]
    return file


def _check_talker(path: Path) -> None:
    with open_bag(path) as bag:
        assert bag.topics["/topic"] == TopicInfo("std_msgs/msg/String", 10, "cdr")
        assert bag.topics["/rosout"].count == 10
        assert bag.topics["/parameter_events"].count == 0
        assert bag.message_count == 20
        assert bag.start_ns == 1585866235112411371
        assert bag.duration_s == pytest.approx(4.531096768)
        texts = [bag.deserialize(m.rawdata, m.msgtype).data for m in bag.messages(["/topic"])]
        assert texts == [f"Hello, world! {i}" for i in range(10)]
        stamps = [m.timestamp_ns for m in bag.messages()]
        assert stamps == sorted(stamps) and len(stamps) == 20
        # the sqlite3 talker embeds a placeholder definition of Log ('uint8 level'):
        # it does not fit the bytes, so the Humble definition is used instead
        logs = [bag.deserialize(m.rawdata, m.msgtype) for m in bag.messages(["/rosout"])]
        assert logs[0].msg == "Publishing: 'Hello, world! 0'"
        assert logs[0].name == "minimal_publisher"


@pytest.mark.parametrize("name", TALKERS)
def test_talker_directory(bag_fixtures: Path, name: str) -> None:
    _check_talker(bag_fixtures / name)


@pytest.mark.parametrize("name", TALKERS)
def test_talker_bare_file(bag_fixtures: Path, name: str, tmp_path: Path) -> None:
    src = _storage_file(bag_fixtures / name)
    bare = tmp_path / src.name
    shutil.copyfile(src, bare)
    _check_talker(bare)


@pytest.mark.parametrize("name", TALKERS)
def test_qos_mismatch_does_not_hide_messages(bag_fixtures: Path, name: str) -> None:
    """metadata.yaml QoS text differs from the storage's: rosbags' directory reader returns
    nothing for such a bag; open_bag must return all 10 messages of /topic."""
    with Reader(bag_fixtures / name) as plain:
        assert sum(1 for _ in plain.messages()) == 0  # the trap this reader avoids
    with open_bag(bag_fixtures / name) as bag:
        assert sum(1 for _ in bag.messages(["/topic"])) == 10


@pytest.mark.parametrize("name", RS_BAGS)
@pytest.mark.parametrize("bare", [False, True])
def test_rosbags_rs_bags(bag_fixtures: Path, name: str, bare: bool, tmp_path: Path) -> None:
    path = bag_fixtures / name
    if bare:
        path = tmp_path / _storage_file(bag_fixtures / name).name
        shutil.copyfile(_storage_file(bag_fixtures / name), path)
    with open_bag(path) as bag:
        assert len(bag.topics) == 94
        assert all(info.count == 2 for info in bag.topics.values())
        assert bag.metadata_version == (None if bare else 5)
        seen: dict[str, int] = {}
        last = 0
        for topic, msgtype, stamp, raw in bag.messages():
            assert stamp >= last
            last = stamp
            assert bag.deserialize(raw, msgtype, topic=topic) is not None
            seen[topic] = seen.get(topic, 0) + 1
        assert len(seen) == 94 and set(seen.values()) == {2}
        bag.require_topic("/test/sensor_msgs/image", "sensor_msgs/Image")
        img = next(bag.decoded_messages(["/test/sensor_msgs/image"]))[3]
        assert (img.height, img.width, img.encoding) == (480, 640, "rgb8")
        # fixture quirk: the header says 640x480 rgb8 (step 1920) but data holds 30 bytes;
        # an image conversion must refuse it (data shorter than height * step)
        assert img.step == 1920 and len(img.data) == 30
        js = next(bag.decoded_messages(["/test/sensor_msgs/joint_state"]))[3]
        assert len(js.name) == len(js.position)


def test_require_topic_errors(bag_fixtures: Path) -> None:
    path = bag_fixtures / "rosbag2_mcap_talker"
    with open_bag(path) as bag:
        assert bag.require_topic("/topic", "std_msgs/String").count == 10
        assert bag.require_topic("/topic", "std_msgs/msg/String").count == 10
        with pytest.raises(BagTopicError) as err:
            bag.require_topic("/topic", "sensor_msgs/msg/Image")
        text = str(err.value)
        assert str(path) in text and "/topic" in text
        assert "sensor_msgs/msg/Image" in text and "std_msgs/msg/String" in text
        with pytest.raises(BagTopicError, match="/camera"):
            bag.require_topic("/camera", "sensor_msgs/msg/Image")
        with pytest.raises(BagTopicError, match="/nope"):
            list(bag.messages(["/nope"]))


def test_truncated_fixture_mcap(bag_fixtures: Path, tmp_path: Path) -> None:
    src = bag_fixtures / "rosbag2_mcap_talker" / "talker.mcap"
    cut = tmp_path / "talker.mcap"
    data = src.read_bytes()
    cut.write_bytes(data[: len(data) // 2])
    with pytest.raises(BagTruncatedError) as err:
        open_bag(cut)
    assert str(cut) in str(err.value)
    with open_bag(cut, recover=True) as bag:  # the one chunk is in the first half, the summary is not
        assert bag.recovered and "truncated" in bag.problems[0]
        texts = [bag.deserialize(m.rawdata, m.msgtype).data for m in bag.messages(["/topic"])]
        assert texts == [f"Hello, world! {i}" for i in range(10)]
    cut.write_bytes(data[:2000])  # inside the chunk: nothing complete
    with open_bag(cut, recover=True) as bag:
        assert bag.topics == {} and list(bag.messages()) == []


def test_not_a_bag(tmp_path: Path) -> None:
    with pytest.raises(BagOpenError, match="no such"):
        open_bag(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BagOpenError, match="no metadata.yaml"):
        open_bag(tmp_path / "empty")
    junk = tmp_path / "junk.mcap"
    junk.write_bytes(b"not an mcap file at all" * 10)
    with pytest.raises(BagOpenError, match="magic"):
        open_bag(junk, recover=True)
    other = tmp_path / "x.bag"
    other.write_bytes(b"")
    with pytest.raises(BagOpenError, match="suffix"):
        open_bag(other)


# ------------------------------------------------------------------ formats written here
TYPESTORE = get_typestore(Stores.ROS2_HUMBLE)


def _string(text: str) -> bytes:
    msg = TYPESTORE.types["std_msgs/msg/String"](data=text)
    return bytes(TYPESTORE.serialize_cdr(msg, "std_msgs/msg/String"))


def _write_bag(path: Path, version: int, storage: StoragePlugin, compression: CompressionMode | None = None) -> None:
    writer = Writer(path, version=max(version, 8), storage_plugin=storage)
    if compression is not None:
        writer.set_compression(compression, CompressionFormat.ZSTD)
    with writer:
        conn = writer.add_connection("/chatter", "std_msgs/msg/String", typestore=TYPESTORE)
        for i in range(5):
            writer.write(conn, 1_000 + i, _string(f"msg {i}"))
    if version < 8:  # older layouts: same keys minus the newer ones
        meta = path / "metadata.yaml"
        doc = yaml.safe_load(meta.read_text())
        info = doc["rosbag2_bagfile_information"]
        info["version"] = version
        info.pop("ros_distro", None)
        if version < 7:
            for entry in info["topics_with_message_count"]:
                entry["topic_metadata"].pop("type_description_hash", None)
        if version < 6:
            info.pop("custom_data", None)
        meta.write_text(yaml.safe_dump(doc))


@pytest.mark.parametrize("version", [4, 5, 6, 7, 8, 9])
@pytest.mark.parametrize("storage", [StoragePlugin.MCAP, StoragePlugin.SQLITE3])
def test_metadata_versions(tmp_path: Path, version: int, storage: StoragePlugin) -> None:
    path = tmp_path / "bag"
    _write_bag(path, version, storage)
    with open_bag(path) as bag:
        assert bag.metadata_version == version
        assert bag.topics == {"/chatter": TopicInfo("std_msgs/msg/String", 5, "cdr")}
        texts = [bag.deserialize(m.rawdata, m.msgtype).data for m in bag.messages()]
        assert texts == [f"msg {i}" for i in range(5)]
        assert (bag.start_ns, bag.duration_s) == (1_000, pytest.approx(4e-9))


@pytest.mark.parametrize("mode", [CompressionMode.FILE, CompressionMode.MESSAGE, CompressionMode.STORAGE])
def test_compressed_bags(tmp_path: Path, mode: CompressionMode) -> None:
    storage = StoragePlugin.MCAP if mode == CompressionMode.STORAGE else StoragePlugin.SQLITE3
    path = tmp_path / "bag"
    _write_bag(path, 9, storage, mode)
    with open_bag(path) as bag:
        texts = [bag.deserialize(m.rawdata, m.msgtype).data for m in bag.messages()]
        assert texts == [f"msg {i}" for i in range(5)]


def test_distro_choice(tmp_path: Path) -> None:
    path = tmp_path / "bag"
    _write_bag(path, 9, StoragePlugin.SQLITE3)
    with open_bag(path, distro="jazzy") as bag:
        assert bag.distro == "jazzy"
    with open_bag(path) as bag:
        assert bag.distro == "humble"  # metadata says ros_distro 'rosbags': not a distro
    with pytest.raises(ValueError, match="unknown ROS 2 distro"):
        open_bag(path, distro="melodic")


def test_bag_without_definitions_uses_distro_store(tmp_path: Path) -> None:
    """A Foxy-era db3 (no schema or message_definitions table) deserialises with the distro
    store; a type the distro lacks is refused with the topic and type named."""
    db3 = tmp_path / "old.db3"
    con = sqlite3.connect(db3)
    con.executescript(
        "CREATE TABLE topics(id INTEGER PRIMARY KEY, name TEXT NOT NULL, type TEXT NOT NULL,"
        " serialization_format TEXT NOT NULL, offered_qos_profiles TEXT NOT NULL);"
        "CREATE TABLE messages(id INTEGER PRIMARY KEY, topic_id INTEGER NOT NULL,"
        " timestamp INTEGER NOT NULL, data BLOB NOT NULL);"
    )
    con.execute("INSERT INTO topics VALUES (1, '/chatter', 'std_msgs/msg/String', 'cdr', '')")
    con.execute("INSERT INTO topics VALUES (2, '/custom', 'my_pkg/msg/Custom', 'cdr', '')")
    con.executemany(
        "INSERT INTO messages(topic_id, timestamp, data) VALUES (?, ?, ?)",
        [(1, 20, _string("second")), (1, 10, _string("first")), (2, 15, _string("?"))],
    )
    con.commit()
    con.close()
    with open_bag(db3) as bag:
        assert bag.topics["/custom"] == TopicInfo("my_pkg/msg/Custom", 1, "cdr")
        msgs = list(bag.messages())
        assert [m.timestamp_ns for m in msgs] == [10, 15, 20]
        assert bag.deserialize(msgs[0].rawdata, "std_msgs/String").data == "first"
        assert bytes(msgs[0].rawdata[:2]) == b"\x00\x01"  # CDR header kept in rawdata
        with pytest.raises(BagTopicError) as err:
            list(bag.decoded_messages(["/custom"]))
        assert "/custom" in str(err.value) and "my_pkg/msg/Custom" in str(err.value) and str(db3) in str(err.value)
