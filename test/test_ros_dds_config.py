"""The package's Cyclone DDS configuration keeps all DDS traffic on loopback.

Checked on a real participant pair: Cyclone's own trace shows the interfaces it selected
and the destination of every packet it sent.
"""

from __future__ import annotations

import os
import pathlib
import re
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

from hpt_ros.ros.dds_config import (
    CYCLONE_COMPATIBILITY_XML,
    CYCLONEDDS_URI,
    FASTDDS_PROFILES_VARIABLES,
    ensure_dds_config,
    fastdds_loopback_profile_path,
    loopback_config_xml,
    transport_config,
)

REPO = pathlib.Path(__file__).resolve().parents[1]
NS = {"c": "https://cdds.io/config"}


def test_loopback_config_content() -> None:
    root = ET.fromstring(loopback_config_xml())
    general = root.find("c:Domain/c:General", NS)
    interface = general.find("c:Interfaces/c:NetworkInterface", NS)
    assert interface.get("address") == "127.0.0.1" and interface.get("multicast") == "false"
    assert general.find("c:AllowMulticast", NS).text == "false"
    discovery = root.find("c:Domain/c:Discovery", NS)
    assert discovery.find("c:ParticipantIndex", NS).text == "auto"
    assert int(discovery.find("c:MaxAutoParticipantIndex", NS).text) >= 100
    assert [p.get("address") for p in discovery.findall("c:Peers/c:Peer", NS)] == ["127.0.0.1"]


def test_ensure_dds_config_sets_loopback_only_when_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(CYCLONEDDS_URI, raising=False)
    assert ensure_dds_config() == loopback_config_xml() == os.environ[CYCLONEDDS_URI]
    monkeypatch.setenv(CYCLONEDDS_URI, "file:///etc/robot/cyclonedds.xml")
    assert ensure_dds_config() == "file:///etc/robot/cyclonedds.xml"
    assert os.environ[CYCLONEDDS_URI] == "file:///etc/robot/cyclonedds.xml"
    monkeypatch.setenv(CYCLONEDDS_URI, "  ")
    assert ensure_dds_config() == loopback_config_xml()


def test_fastdds_profile_content() -> None:
    root = ET.parse(fastdds_loopback_profile_path()).getroot()
    ns, f = {"f": "http://www.eprosima.com"}, "f:"
    descriptor = root.find(f"{f}profiles/{f}transport_descriptors/{f}transport_descriptor", ns)
    assert descriptor.find(f"{f}type", ns).text == "UDPv4"
    assert [a.text for a in descriptor.findall(f"{f}interfaceWhiteList/{f}address", ns)] == ["127.0.0.1"]
    participant = root.find(f"{f}profiles/{f}participant", ns)
    assert participant.get("is_default_profile") == "true"
    rtps = participant.find(f"{f}rtps", ns)
    assert rtps.find(f"{f}useBuiltinTransports", ns).text == "false"
    assert rtps.find(f"{f}userTransports/{f}transport_id", ns).text == descriptor.find(f"{f}transport_id", ns).text
    for locators in ("metatrafficUnicastLocatorList", "initialPeersList"):
        addresses = rtps.findall(f"{f}builtin/{f}{locators}/{f}locator/{f}udpv4/{f}address", ns)
        assert [a.text for a in addresses] == ["127.0.0.1"], locators
    assert rtps.find(f"{f}builtin/{f}metatrafficMulticastLocatorList", ns) is None


def test_ensure_dds_config_sets_the_fastdds_profile_only_when_none_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in FASTDDS_PROFILES_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("ROS_DISTRO", raising=False)
    ensure_dds_config()
    assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] == str(fastdds_loopback_profile_path())
    assert os.environ["FASTRTPS_DEFAULT_PROFILES_FILE"] == str(fastdds_loopback_profile_path())  # Fast DDS 2
    monkeypatch.delenv("FASTRTPS_DEFAULT_PROFILES_FILE")
    monkeypatch.setenv("FASTDDS_DEFAULT_PROFILES_FILE", "/etc/robot/fastdds.xml")
    ensure_dds_config()
    assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] == "/etc/robot/fastdds.xml"
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in os.environ  # the user chose: nothing added
    monkeypatch.delenv("FASTDDS_DEFAULT_PROFILES_FILE")
    monkeypatch.setenv("ROS_DISTRO", "kilted")  # Fast DDS 3 warns about the 2.x name: only the 3.x one
    ensure_dds_config()
    assert os.environ["FASTDDS_DEFAULT_PROFILES_FILE"] == str(fastdds_loopback_profile_path())
    assert "FASTRTPS_DEFAULT_PROFILES_FILE" not in os.environ


def test_transport_config_puts_the_compatibility_settings_first(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CYCLONEDDS_URI, "file:///etc/robot/cyclonedds.xml")
    # first, so that a user's own Compatibility settings override them
    assert transport_config() == f"{CYCLONE_COMPATIBILITY_XML},file:///etc/robot/cyclonedds.xml"
    assert os.environ[CYCLONEDDS_URI] == "file:///etc/robot/cyclonedds.xml"
    assert "<IgnoreTypeInformation>1.15</IgnoreTypeInformation>" in CYCLONE_COMPATIBILITY_XML


IGMP_WITH_DDS_ON_ETH0 = """Idx\tDevice    : Count Querier\tGroup    Users Timer\tReporter
1\tlo        :     2      V3
\t\t\t\t0100FFEF     1 0:00000000\t\t0
\t\t\t\t010000E0     1 0:00000000\t\t0
4\teth0      :     2      V3
\t\t\t\t0100FFEF     1 0:00000000\t\t0
\t\t\t\t010000E0     1 0:00000000\t\t0
"""


def test_igmp_check_sees_the_dds_discovery_group_off_loopback() -> None:
    from igmp import joined_groups, non_loopback_groups

    # DDS's default discovery group 239.255.0.1 on lo and eth0; all-hosts is not counted
    assert joined_groups(IGMP_WITH_DDS_ON_ETH0) == {"lo": {"239.255.0.1", "224.0.0.1"},
                                                    "eth0": {"239.255.0.1", "224.0.0.1"}}
    assert non_loopback_groups(IGMP_WITH_DDS_ON_ETH0) == {("eth0", "239.255.0.1")}


CHILD = """
import sys
from hpt_ros.ros.dds import DdsTransport
got = []
sub = DdsTransport("trace_sub")
sub.create_subscription("/trace_check", "std_msgs/msg/String", lambda m: got.append(m.data))
pub = DdsTransport("trace_pub")
p = pub.create_publisher("/trace_check", "std_msgs/msg/String")
msg = pub.new_message("std_msgs/msg/String")
msg.data = "on loopback"
for _ in range(40):
    p.publish(msg)
    sub.spin(duration_s=0.05)
    if got:
        break
pub.shutdown()
sub.shutdown()
print("GOT", got[:1])
"""


def test_dds_traffic_stays_on_loopback(tmp_path: pathlib.Path) -> None:
    from conftest import require_module

    require_module("cyclonedds")  # a hard dependency: a failure under CI=true, not a skip
    trace = tmp_path / "cyclonedds.log"
    tracing = (f"<CycloneDDS><Domain><Tracing><Verbosity>finest</Verbosity><OutputFile>{trace}</OutputFile>"
               "</Tracing></Domain></CycloneDDS>")
    env = dict(os.environ, CYCLONEDDS_URI=loopback_config_xml() + "," + tracing,
               ROS_DOMAIN_ID=str(100 + os.getpid() % 100), PYTHONPATH=str(REPO))
    result = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=REPO, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stderr
    assert "GOT ['on loopback']" in result.stdout
    log = trace.read_text()
    assert re.search(r"selected interfaces: lo \(", log), "Cyclone selected an interface other than lo"
    assert "ownip: udp/127.0.0.1" in log
    destinations = re.findall(r"ddsi_xpack_send \d+:.*\[ (.*?) \]", log)
    assert destinations, "no packet was traced"
    for destination in destinations:
        for locator in destination.split():
            assert locator.startswith("udp/127.0.0.1:"), f"a packet went to {locator}"
