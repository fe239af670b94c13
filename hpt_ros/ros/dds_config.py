"""DDS configuration owned by the package: loopback only, unless the user says otherwise.

Both DDS implementations the package meets are configured here, in one place: Cyclone DDS
(the ``dds`` transport, and ``rmw_cyclonedds_cpp``) and Fast DDS (``rmw_fastrtps_cpp``,
the default RMW of the rclpy transport).

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

Fast DDS reads an XML profiles file named by ``FASTRTPS_DEFAULT_PROFILES_FILE`` (Fast DDS
2.x: ROS 2 Humble, Jazzy) or ``FASTDDS_DEFAULT_PROFILES_FILE`` (3.x: Kilted and later)
when the first participant is created. When neither is set, :func:`ensure_dds_config`
sets them (only the 3.x one where Fast DDS 3 is installed) to ``fastdds_loopback.xml``
beside this module, whose default participant
profile has a single UDPv4 transport restricted to 127.0.0.1, the builtin transports
(UDP on every interface, shared memory) off, and unicast discovery through 127.0.0.1 as
metatraffic locator and initial peer: no multicast group is joined. When either is set
the user chose a profile (a robot's network), and both are left alone.

Fast DDS 3 (ROS 2 Kilted and later) announces XTypes type information that Cyclone DDS
11 rejects: its sequence types carry element flags 0 (no TRY_CONSTRUCT), which Cyclone
reports as "ddsi_xt_type_init_impl with invalid type object", and with
``Compatibility/AllowInvalidTryConstruct`` the assignability check still fails on the
nested final structs ("wr type not delimited"), so no type with a sequence (JointState,
Image, ...) matches; Fast DDS 2 sends no type information and matches by type name. The
``dds`` transport therefore gives its Cyclone domain :func:`transport_config`: the
configuration above, preceded by :data:`CYCLONE_COMPATIBILITY_XML`
(``Compatibility/IgnoreTypeInformation`` for eProsima's vendor id 1.15: endpoints of Fast
DDS participants match by type name, as with Fast DDS 2; the bytes are the same XCDR1
either way). It goes to ``dds_create_domain``, not into ``CYCLONEDDS_URI``, because the
element does not exist in Cyclone 0.10 (rmw_cyclonedds_cpp of Humble / Jazzy), which
rejects configurations with unknown elements.

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

__all__ = ["CYCLONEDDS_URI", "CYCLONE_COMPATIBILITY_XML", "FASTDDS_PROFILES_VARIABLES", "ensure_dds_config",
           "fastdds_loopback_profile_path", "loopback_config_path", "loopback_config_xml", "transport_config"]

CYCLONEDDS_URI = "CYCLONEDDS_URI"
#: Fast DDS 2.x, then 3.x: the variable naming the XML profiles file.
FASTDDS_PROFILES_VARIABLES = ("FASTRTPS_DEFAULT_PROFILES_FILE", "FASTDDS_DEFAULT_PROFILES_FILE")
#: Cyclone DDS 11 settings of the dds transport's domain, before the user's or the loopback configuration.
CYCLONE_COMPATIBILITY_XML = ("<CycloneDDS><Domain><Compatibility><IgnoreTypeInformation>1.15</IgnoreTypeInformation>"
                             "</Compatibility></Domain></CycloneDDS>")


def loopback_config_path() -> pathlib.Path:
    """The package's loopback configuration file."""
    return pathlib.Path(__file__).with_name("cyclonedds_loopback.xml")


@functools.lru_cache(maxsize=1)
def loopback_config_xml() -> str:
    """The package's Cyclone DDS configuration: everything on 127.0.0.1, no multicast."""
    return loopback_config_path().read_text(encoding="utf-8")


def fastdds_loopback_profile_path() -> pathlib.Path:
    """The package's Fast DDS loopback profiles file."""
    return pathlib.Path(__file__).with_name("fastdds_loopback.xml")


def _fast_dds_3() -> bool:
    """Whether the Fast DDS of this environment is 3.x: the ``ros-fastdds`` wheel, or a ROS 2
    distribution newer than Jazzy (``ROS_DISTRO``, set by a ROS 2 install's setup script)."""
    import importlib.metadata

    try:
        importlib.metadata.version("ros-fastdds")
        return True
    except importlib.metadata.PackageNotFoundError:
        pass
    distro = os.environ.get("ROS_DISTRO", "").strip().lower()
    return bool(distro) and distro not in ("humble", "iron", "jazzy")


def ensure_dds_config() -> str:
    """Set ``CYCLONEDDS_URI`` and the Fast DDS profiles file to the loopback configurations,
    each unless the user already configured that implementation.

    Returns the ``CYCLONEDDS_URI`` in effect. Must run before the first DomainParticipant of
    the process is created (both implementations read the variables once).
    """
    if not any(os.environ.get(name, "").strip() for name in FASTDDS_PROFILES_VARIABLES):
        # rmw_fastrtps on Fast DDS 3 warns at every start when the 2.x name is set
        for name in FASTDDS_PROFILES_VARIABLES[1:] if _fast_dds_3() else FASTDDS_PROFILES_VARIABLES:
            os.environ[name] = str(fastdds_loopback_profile_path())
    current = os.environ.get(CYCLONEDDS_URI, "").strip()
    if current:
        return current
    os.environ[CYCLONEDDS_URI] = loopback_config_xml()
    return os.environ[CYCLONEDDS_URI]


def transport_config() -> str:
    """The Cyclone configuration of the ``dds`` transport's domain: :data:`CYCLONE_COMPATIBILITY_XML`
    (Cyclone 11 and later), then :func:`ensure_dds_config`'s, whose settings win where both set one."""
    import importlib.metadata

    uri = ensure_dds_config()
    try:
        major = int(importlib.metadata.version("cyclonedds").split(".")[0])
    except (importlib.metadata.PackageNotFoundError, ValueError):
        major = 0
    return f"{CYCLONE_COMPATIBILITY_XML},{uri}" if major >= 11 else uri
