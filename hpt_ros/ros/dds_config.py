"""Cyclone DDS configuration owned by the package: loopback only, unless the user says otherwise.

Cyclone DDS reads its configuration from the ``CYCLONEDDS_URI`` environment variable when
the first DomainParticipant is created. Its default announces itself by UDP multicast on
a network interface, which must never happen on development or CI machines. So before the
``dds`` transport creates a participant it calls :func:`ensure_dds_config`, which

* leaves ``CYCLONEDDS_URI`` alone when the user has set it: on a real robot that is how
  you choose the network interface (and peers), exactly as for ``rmw_cyclonedds_cpp``,
  e.g. ``CYCLONEDDS_URI='<CycloneDDS><Domain><General><Interfaces>
  <NetworkInterface name="enp3s0"/></Interfaces></General></Domain></CycloneDDS>'``;
* otherwise sets it to :func:`loopback_config_xml`, the content of
  ``cyclonedds_loopback.xml`` beside this module: interface 127.0.0.1, multicast off,
  unicast discovery to peer 127.0.0.1, participant index ``auto`` (so every process on
  the host gets its own port pair and the others find it by probing indices
  0..MaxAutoParticipantIndex).

Loopback has a 64 KiB MTU, so the configuration also raises ``General/MaxMessageSize`` to
65500 B and ``General/FragmentSize`` to 62000 B: a 640x480 rgb8 frame then travels in 15
datagrams instead of ~700, which is what keeps two 30 Hz cameras free of loss with
best-effort QoS (see ``bench/bench_dds_images.py``).

A ROS 2 node on the same host (``RMW_IMPLEMENTATION=rmw_cyclonedds_cpp``) joins these
nodes with ``CYCLONEDDS_URI=file://$(python -c "from hpt_ros.ros.dds_config import
loopback_config_path; print(loopback_config_path())")``.

The XML follows the Cyclone DDS 0.10 / 11.x schema (``https://cdds.io/config``):
``General/Interfaces/NetworkInterface@address``, ``General/AllowMulticast``,
``General/DontRoute``, ``General/MaxMessageSize``, ``General/FragmentSize``,
``Discovery/Peers/Peer@address``, ``Discovery/ParticipantIndex`` and
``Discovery/MaxAutoParticipantIndex``.
"""

from __future__ import annotations

import functools
import os
import pathlib

__all__ = ["CYCLONEDDS_URI", "ensure_dds_config", "loopback_config_path", "loopback_config_xml"]

CYCLONEDDS_URI = "CYCLONEDDS_URI"


def loopback_config_path() -> pathlib.Path:
    """The package's loopback configuration file."""
    return pathlib.Path(__file__).with_name("cyclonedds_loopback.xml")


@functools.lru_cache(maxsize=1)
def loopback_config_xml() -> str:
    """The package's Cyclone DDS configuration: everything on 127.0.0.1, no multicast."""
    return loopback_config_path().read_text(encoding="utf-8")


def ensure_dds_config() -> str:
    """Set ``CYCLONEDDS_URI`` to the loopback config unless the user already set it.

    Returns the value in effect. Must run before the first DomainParticipant of the
    process is created (Cyclone DDS reads the variable once per domain).
    """
    current = os.environ.get(CYCLONEDDS_URI, "").strip()
    if current:
        return current
    os.environ[CYCLONEDDS_URI] = loopback_config_xml()
    return os.environ[CYCLONEDDS_URI]
