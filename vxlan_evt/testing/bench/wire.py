"""Pure byte-level helpers shared by the benchmark processes (no sockets, no clocks).

* the address plan: peer i has IP 10.42.0.10 + i and a MAC derived from i, and
  every peer sits behind the one remote VTEP 10.99.0.2;
* a minimal rtnetlink neighbour-message parser (enough to tell a miss, a new
  neighbour entry and a new FDB entry apart; much cheaper than pyroute2's). It is the
  reference processes' own on purpose, so the reference is not our decoder; the layouts
  and numbers it reads come from `vxlan_evt.kernel.wire`, the one copy;
* an ARP request frame.
"""

from __future__ import annotations

import ipaddress
import json
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vxlan_evt.kernel.wire import (
    NDA_DST,
    NDA_LLADDR,
    NDMSG,
    NLM_F_ACK,
    NLM_F_CREATE,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    NLMSGERR,
    NLMSGHDR,
    NTF_SELF,
    NUD_NOARP,
    NUD_PERMANENT,
    RTATTR,
    RTM_DELNEIGH,
    RTM_GETNEIGH,
    RTM_NEWNEIGH,
    align,
    encode_attribute,
)

VNI = 42
VXLAN = "vx-42"
BRIDGE = "br-42"
REMOTE_VTEP = "10.99.0.2"
LOCAL_VTEP = "10.99.0.1"
CONTAINER_IP = "10.42.255.254"
CONTAINER_MAC = "02:42:0a:2a:ff:fe"
PEER_BASE = int(ipaddress.IPv4Address("10.42.0.10"))
MAX_PEERS = 60_000  # stays below CONTAINER_IP

AF_BRIDGE = socket.AF_BRIDGE
ETH_P_ARP = 0x0806

_ETH = struct.Struct("!6s6sH")
_ARP = struct.Struct("!HHBBH6s4s6s4s")


def peer_ip(index: int) -> str:
    """The overlay IP of peer `index` (0-based): 10.42.0.10, 10.42.0.11, ..."""
    if not 0 <= index < MAX_PEERS:
        raise ValueError(f"peer index {index} outside 0..{MAX_PEERS - 1}")
    return str(ipaddress.IPv4Address(PEER_BASE + index))


def peer_mac(index: int) -> str:
    """A locally administered unicast MAC unique to peer `index`."""
    if not 0 <= index < MAX_PEERS:
        raise ValueError(f"peer index {index} outside 0..{MAX_PEERS - 1}")
    return "02:bb:00:00:{:02x}:{:02x}".format(*divmod(index, 256))


def write_peers_file(path: Path, count: int) -> Path:
    """The daemon's `--peers` JSON: `count` peers of VNI 42 behind REMOTE_VTEP."""
    peers = [{"ip": peer_ip(i), "mac": peer_mac(i), "vtep": REMOTE_VTEP} for i in range(count)]
    path.write_text(json.dumps({str(VNI): peers}))
    return path


def read_peers_file(path: Path) -> dict[str, tuple[str, str]]:
    """IP -> (MAC, VTEP) from a peers file written by `write_peers_file`."""
    document = json.loads(path.read_text())
    return {p["ip"]: (p["mac"], p["vtep"]) for p in document[str(VNI)]}


@dataclass(frozen=True, slots=True)
class NeighMsg:
    """One rtnetlink neighbour message, reduced to what the benchmarks look at.

    kind: "miss" (RTM_GETNEIGH: an L2/L3 miss), "new" or "del"; family AF_INET for
    ARP entries, AF_BRIDGE (7) for FDB entries and for vxlan misses.
    """

    kind: str
    family: int
    ifindex: int
    ip: str | None
    mac: str | None


_KINDS = {RTM_NEWNEIGH: "new", RTM_DELNEIGH: "del", RTM_GETNEIGH: "miss"}


def parse_neigh_messages(data: bytes) -> Iterator[NeighMsg]:
    """Every neighbour message in one netlink datagram; other message types are skipped."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, msg_type, _flags, _seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size or offset + length > len(data):
            return
        kind = _KINDS.get(msg_type)
        body = offset + NLMSGHDR.size
        if kind is not None and length >= NLMSGHDR.size + NDMSG.size:
            family, ifindex, _state, _flags2, _type = NDMSG.unpack_from(data, body)
            ip, mac = _attributes(data, body + NDMSG.size, offset + length)
            yield NeighMsg(kind, family, ifindex, ip, mac)
        offset += align(length)


def _attributes(data: bytes, start: int, end: int) -> tuple[str | None, str | None]:
    ip: str | None = None
    mac: str | None = None
    at = start
    while at + RTATTR.size <= end:
        length, attr_type = RTATTR.unpack_from(data, at)
        if length < RTATTR.size:
            break
        value = data[at + RTATTR.size : at + length]
        if attr_type == NDA_DST and len(value) in (4, 16):
            family = socket.AF_INET if len(value) == 4 else socket.AF_INET6
            ip = socket.inet_ntop(family, value)
        elif attr_type == NDA_LLADDR and len(value) == 6:
            mac = value.hex(":")
        at += align(length)
    return ip, mac


def build_arp_request(src_mac: str, src_ip: str, target_ip: str) -> bytes:
    """A broadcast "who has target_ip? tell src_ip" frame, padded to 60 bytes."""
    sha = bytes.fromhex(src_mac.replace(":", ""))
    eth = _ETH.pack(b"\xff" * 6, sha, ETH_P_ARP)
    arp = _ARP.pack(
        1, 0x0800, 6, 4, 1, sha, socket.inet_aton(src_ip), b"\0" * 6, socket.inet_aton(target_ip)
    )
    return (eth + arp).ljust(60, b"\0")


# --- hand-encoded write requests (bench_burst's "for scale" writer) -------------------------


def _newneigh(
    seq: int, family: int, ifindex: int, state: int, flags: int, attrs: bytes, ack: bool
) -> bytes:
    body = NDMSG.pack(family, ifindex, state, flags, 0) + attrs
    header_flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE | (NLM_F_ACK if ack else 0)
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), RTM_NEWNEIGH, header_flags, seq, 0) + body


def encode_neigh_replace(seq: int, ifindex: int, ip: str, mac: str, *, ack: bool = True) -> bytes:
    """RTM_NEWNEIGH: `neigh replace IP lladdr MAC dev <ifindex> nud permanent` (IPv4).

    Without `ack` the kernel answers only if the request fails (an NLMSG_ERROR is
    always sent for an error), so a batch needs an ACK on its last request only.
    """
    attrs = encode_attribute(NDA_DST, socket.inet_aton(ip)) + encode_attribute(
        NDA_LLADDR, bytes.fromhex(mac.replace(":", ""))
    )
    return _newneigh(seq, socket.AF_INET, ifindex, NUD_PERMANENT, 0, attrs, ack)


def encode_fdb_replace(seq: int, ifindex: int, mac: str, vtep: str, *, ack: bool = True) -> bytes:
    """RTM_NEWNEIGH (AF_BRIDGE): `fdb replace MAC dev <ifindex> dst VTEP self permanent`."""
    attrs = encode_attribute(NDA_LLADDR, bytes.fromhex(mac.replace(":", ""))) + encode_attribute(
        NDA_DST, socket.inet_aton(vtep)
    )
    return _newneigh(seq, AF_BRIDGE, ifindex, NUD_PERMANENT | NUD_NOARP, NTF_SELF, attrs, ack)


def parse_acks(data: bytes) -> Iterator[tuple[int, int]]:
    """(sequence number, error code; 0 = success) of every NLMSG_ERROR in a datagram."""
    offset = 0
    while offset + NLMSGHDR.size <= len(data):
        length, msg_type, _flags, seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size:
            return
        if msg_type == NLMSG_ERROR:
            (code,) = NLMSGERR.unpack_from(data, offset + NLMSGHDR.size)
            yield seq, code
        offset += align(length)
