"""Multicast groups joined per network interface, from /proc/net/igmp (Linux)."""

from __future__ import annotations

import pathlib
import socket
import struct

IGMP = pathlib.Path("/proc/net/igmp")
ALL_HOSTS = "224.0.0.1"  # the kernel joins it on every multicast-capable interface


def joined_groups(text: str | None = None) -> dict[str, set[str]]:
    """interface name -> IPv4 multicast groups joined on it (from ``text``, default /proc/net/igmp)."""
    groups: dict[str, set[str]] = {}
    device = ""
    for line in (IGMP.read_text() if text is None else text).splitlines()[1:]:
        if not line.startswith("\t"):
            device = line.split()[1]
            groups.setdefault(device, set())
        elif line.strip():
            # the group is the kernel's u32 in host byte order, printed in hex
            groups[device].add(socket.inet_ntoa(struct.pack("=I", int(line.split()[0], 16))))
    return groups


def non_loopback_groups(text: str | None = None) -> set[tuple[str, str]]:
    """(interface, group) joined on an interface other than lo, except all-hosts."""
    return {(dev, g) for dev, gs in joined_groups(text).items() if dev != "lo" for g in gs if g != ALL_HOSTS}
