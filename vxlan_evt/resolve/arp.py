"""Frames that tell a waiting container where an IP lives, and the ports to send them on.

Pure: bytes and names out, no sockets. Why it exists (DESIGN.md, "Kernel facts
for the listener"): answering an L3 miss only by programming neighbour + FDB
entries leaves the container's first ARP request (or IPv6 neighbour
solicitation) dropped, so its first packet waits ~1 s for the retry. Sending
it an ARP reply (IPv6: an unsolicited neighbour advertisement with the
override flag) right after programming makes its INCOMPLETE entry valid and
the queued packet leaves at once.

The frames go only to the host ends of the veths on the vxlan device's
bridge (transmitting there delivers into the container, bypassing the
bridge): never to the bridge, the vxlan device or the underlay.
"""

from __future__ import annotations

import struct
from collections.abc import Collection, Mapping
from ipaddress import IPv4Address, IPv6Address

from vxlan_evt.driver.plan import network_of_link
from vxlan_evt.model.links import LinkInfo
from vxlan_evt.model.state import DriverState

ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_ZLEN = 60  # shortest Ethernet frame without FCS; ARP is padded to it
BROADCAST_MAC = "ff:ff:ff:ff:ff:ff"
ALL_NODES = IPv6Address("ff02::1")
ARPHRD_ETHER = 1
ARPOP_REPLY = 2
IPPROTO_ICMPV6 = 58
ND_NEIGHBOR_ADVERT = 136
ND_OPT_TARGET_LLADDR = 2
NA_ROUTER, NA_SOLICITED, NA_OVERRIDE = 0x80, 0x40, 0x20

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")
_IPV6 = struct.Struct("!IHBB16s16s")
_NA = struct.Struct("!BBHB3x16sBB6s")  # ICMPv6 header, flags, target, TLLA option


def mac_bytes(mac: str) -> bytes:
    """ "aa:bb:cc:dd:ee:ff" (or with "-") as 6 bytes; ValueError for anything else."""
    octets = mac.replace("-", ":").split(":")
    if len(octets) != 6 or not all(len(o) in (1, 2) for o in octets):
        raise ValueError(f"not a MAC address: {mac!r}")
    return bytes(int(o, 16) for o in octets)


def multicast_mac(ip: IPv6Address) -> str:
    """The Ethernet group address of an IPv6 multicast address (RFC 2464: 33:33 + low 32 bits)."""
    return "33:33:" + ip.packed[-4:].hex(":")


def build_arp_reply(
    sender_mac: str,
    sender_ip: IPv4Address,
    *,
    target_mac: str | None = None,
    target_ip: IPv4Address | None = None,
    dst_mac: str = BROADCAST_MAC,
) -> bytes:
    """An ARP reply "sender_ip is at sender_mac", broadcast by default.

    The target fields default to the sender's own (a gratuitous reply, RFC
    5227 style): Linux then treats it as gratuitous and overrides an entry
    even within its locktime, and it names no particular container, since a
    miss does not say which one asked.
    """
    sha = mac_bytes(sender_mac)
    tha = mac_bytes(target_mac) if target_mac is not None else sha
    tpa = (target_ip if target_ip is not None else sender_ip).packed
    eth = _ETH.pack(mac_bytes(dst_mac), sha, ETH_P_ARP)
    arp = _ARP.pack(ARPHRD_ETHER, 0x0800, 6, 4, ARPOP_REPLY, sha, sender_ip.packed, tha, tpa)
    return (eth + arp).ljust(ETH_ZLEN, b"\0")


def icmpv6_checksum(src: IPv6Address, dst: IPv6Address, message: bytes) -> int:
    """RFC 4443 checksum: one's complement sum over the pseudo-header and the message."""
    pseudo = src.packed + dst.packed + struct.pack("!I3xB", len(message), IPPROTO_ICMPV6)
    data = pseudo + message + (b"\0" if len(message) % 2 else b"")
    total: int = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def build_neighbor_advert(
    sender_mac: str,
    target_ip: IPv6Address,
    *,
    src_ip: IPv6Address | None = None,
    dst_ip: IPv6Address = ALL_NODES,
    dst_mac: str | None = None,
    override: bool = True,
    router: bool = False,
) -> bytes:
    """An unsolicited neighbour advertisement "target_ip is at sender_mac" (RFC 4861 7.2.6).

    Sent from the target address itself to all-nodes by default, hop limit
    255 (receivers drop anything else), with the target link-layer address
    option and the override flag, so an INCOMPLETE or outdated entry takes it.
    """
    src = src_ip if src_ip is not None else target_ip
    mac = mac_bytes(sender_mac)
    flags = (NA_OVERRIDE if override else 0) | (NA_ROUTER if router else 0)
    unsummed = _NA.pack(ND_NEIGHBOR_ADVERT, 0, 0, flags, target_ip.packed, 2, 1, mac)
    checksum = icmpv6_checksum(src, dst_ip, unsummed)
    icmp = unsummed[:2] + struct.pack("!H", checksum) + unsummed[4:]
    ipv6 = _IPV6.pack(6 << 28, len(icmp), IPPROTO_ICMPV6, 255, src.packed, dst_ip.packed)
    eth_dst = dst_mac if dst_mac is not None else multicast_mac(dst_ip)
    return _ETH.pack(mac_bytes(eth_dst), mac, ETH_P_IPV6) + ipv6 + icmp


def answer_frame(mac: str, ip: IPv4Address | IPv6Address) -> tuple[int, bytes]:
    """(ethertype, frame) telling containers that `ip` is at `mac`."""
    if isinstance(ip, IPv4Address):
        return ETH_P_ARP, build_arp_reply(mac, ip)
    return ETH_P_IPV6, build_neighbor_advert(mac, ip)


def answer_ports(
    links: Mapping[int, LinkInfo],
    vxlan_ifindex: int,
    endpoint_ifnames: Collection[str] | None = None,
) -> tuple[str, ...]:
    """The container-facing veth ends to send an answer on, sorted by name.

    Only veths that are up and enslaved to the vxlan device's bridge qualify,
    never the vxlan device itself or the bridge. `endpoint_ifnames` (the
    daemon's endpoints of the owning network) narrows the choice to those
    ports; None (a hand-made link) takes every veth port of the bridge.
    """
    vxlan = links.get(vxlan_ifindex)
    if vxlan is None or vxlan.master is None:
        return ()
    bridge = vxlan.master
    ports = (
        info
        for index, info in links.items()
        if info.master == bridge
        and index not in (vxlan_ifindex, bridge)
        and info.kind == "veth"
        and info.up
        and info.ifname
    )
    if endpoint_ifnames is not None:
        wanted = set(endpoint_ifnames)
        ports = (info for info in ports if info.ifname in wanted)
    return tuple(sorted(info.ifname for info in ports))


def endpoint_ports(
    vxlan_ifindex: int, links: Mapping[int, LinkInfo], state: DriverState
) -> list[str] | None:
    """Host veth names of the daemon's endpoints on the network owning this vxlan device;
    None when the daemon did not create the device (then every veth port qualifies)."""
    network = network_of_link(vxlan_ifindex, links, state.networks)
    if network is None:
        return None
    return [e.host_ifname for e in state.endpoints_of(network.network_id)]
