"""The rtnetlink wire format, written once: every constant, struct and framing rule we use.

Pure: no sockets. The decoder, the entry writer, the link parser, the dump loops and the
capture tool all read and write messages through this module, so a number or a layout
that is wrong is wrong in one place. Values are the kernel's (linux/netlink.h,
linux/rtnetlink.h, linux/if_link.h, linux/neighbour.h, linux/if_addr.h).
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, field

log = logging.getLogger(__name__)

# Message types.
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE = 1, 2, 3
RTM_NEWLINK, RTM_DELLINK, RTM_GETLINK = 16, 17, 18
RTM_NEWADDR, RTM_DELADDR, RTM_GETADDR = 20, 21, 22
RTM_NEWNEIGH, RTM_DELNEIGH, RTM_GETNEIGH = 28, 29, 30
# Replies and notifications that carry no object.
CONTROL = frozenset({NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE})

# Header flags.
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK = 0x1, 0x2, 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_ACK_TLVS = 0x200  # on an NLMSG_ERROR: extended-ACK attributes follow
NLM_F_DUMP = 0x300  # NLM_F_ROOT | NLM_F_MATCH
NLM_F_REPLACE, NLM_F_CREATE, NLM_F_APPEND = 0x100, 0x400, 0x800
NLMSGERR_ATTR_MSG = 1

# Multicast groups (the bit masks of bind(); RTNLGRP_* - 1 as a shift).
RTMGRP_LINK = 0x1
RTMGRP_NEIGH = 0x4
RTMGRP_IPV4_IFADDR, RTMGRP_IPV6_IFADDR = 0x10, 0x100

# Socket options.
SOL_NETLINK = 270
NETLINK_CAP_ACK, NETLINK_EXT_ACK = 10, 11
SO_RCVBUFFORCE: int = getattr(socket, "SO_RCVBUFFORCE", 33)

# Links (ifinfomsg).
IFF_UP = 0x1
IFLA_ADDRESS, IFLA_IFNAME, IFLA_MTU, IFLA_MASTER = 1, 3, 4, 10
IFLA_OPERSTATE, IFLA_LINKINFO, IFLA_IFALIAS = 16, 18, 20
IFLA_INFO_KIND, IFLA_INFO_DATA = 1, 2
IFLA_VXLAN_ID = 1
# RFC 2863 operational states by IF_OPER_* code, in pyroute2's (and iproute2's) spelling.
OPERSTATES = ("UNKNOWN", "NOTPRESENT", "DOWN", "LOWERLAYERDOWN", "TESTING", "DORMANT", "UP")

# Addresses (ifaddrmsg).
IFA_ADDRESS, IFA_LOCAL, IFA_FLAGS = 1, 2, 8
# Not (yet) usable: IPv6 duplicate address detection still running, or failed.
IFA_F_DADFAILED, IFA_F_TENTATIVE = 0x08, 0x40

# Neighbours and FDB entries (ndmsg).
NDA_DST, NDA_LLADDR, NDA_CACHEINFO, NDA_VLAN, NDA_PORT, NDA_VNI, NDA_MASTER = 1, 2, 3, 5, 6, 7, 9
NUD_NOARP, NUD_PERMANENT = 0x40, 0x80
NTF_SELF = 0x02
# Bit order, so a combined state reads like "NOARP|PERMANENT".
NUD_NAMES = (
    (0x01, "INCOMPLETE"), (0x02, "REACHABLE"), (0x04, "STALE"), (0x08, "DELAY"),
    (0x10, "PROBE"), (0x20, "FAILED"), (0x40, "NOARP"), (0x80, "PERMANENT"),
)  # fmt: skip
# iproute2's spelling of the NTF_* flags.
NTF_NAMES = (
    (0x01, "use"), (0x02, "self"), (0x04, "master"), (0x08, "proxy"),
    (0x10, "extern_learn"), (0x20, "offload"), (0x40, "sticky"), (0x80, "router"),
)  # fmt: skip

# Layouts, native byte order (ports are network order).
NLMSGHDR = struct.Struct("=IHHII")  # length, type, flags, seq, pid
NLMSGERR = struct.Struct("=i")  # the negative errno that starts an NLMSG_ERROR body
IFINFOMSG = struct.Struct("=BxHiII")  # family, type, index, flags, change
IFADDRMSG = struct.Struct("=BBBBI")  # family, prefixlen, flags, scope, index
NDMSG = struct.Struct("=BxxxiHBB")  # family, ifindex, state, flags, type
RTATTR = struct.Struct("=HH")  # length, type
U32, U16, BE16 = struct.Struct("=I"), struct.Struct("=H"), struct.Struct("!H")

RECV_SIZE = 1024 * 1024  # one recv; a message cut short shows up as a TruncatedError
DUMP_ATTEMPTS = 3


def align(length: int) -> int:
    return (length + 3) & ~3


def nud_state_name(state: int) -> str:
    """Readable NUD state: "PERMANENT", "NOARP|PERMANENT", or "NONE" for 0."""
    return "|".join(name for bit, name in NUD_NAMES if state & bit) or "NONE"


def ntf_flag_names(flags: int) -> tuple[str, ...]:
    return tuple(name for bit, name in NTF_NAMES if flags & bit)


@dataclass(frozen=True, slots=True)
class Header:
    """One netlink message's header and its bytes (header included)."""

    msg_type: int
    flags: int
    seq: int
    data: bytes


class TruncatedError(ValueError):
    """The buffer ends inside a message: what was before it is still good."""


def split_messages(data: bytes) -> Iterator[Header]:
    """Cut a datagram (or a concatenation of datagrams) into single messages."""
    offset = 0
    while offset < len(data):
        if len(data) - offset < NLMSGHDR.size:
            raise TruncatedError(f"{len(data) - offset} stray bytes after the last message")
        length, msg_type, flags, seq, _pid = NLMSGHDR.unpack_from(data, offset)
        if length < NLMSGHDR.size or offset + length > len(data):
            raise TruncatedError(f"message length {length} at offset {offset} of {len(data)}")
        yield Header(msg_type, flags, seq, data[offset : offset + length])
        offset += align(length)


def attributes(data: bytes, start: int = 0, end: int | None = None) -> dict[int, bytes]:
    """The rtattrs in data[start:end] by type (NLA_F_* bits cleared; the last one wins)."""
    end = len(data) if end is None else end
    found: dict[int, bytes] = {}
    offset = start
    while offset + RTATTR.size <= end:
        length, kind = RTATTR.unpack_from(data, offset)
        if length < RTATTR.size or offset + length > end:
            raise ValueError(f"bad attribute length {length} at offset {offset}")
        found[kind & 0x3FFF] = data[offset + RTATTR.size : offset + length]
        offset += align(length)
    return found


def encode_attribute(kind: int, value: bytes) -> bytes:
    length = RTATTR.size + len(value)
    return RTATTR.pack(length, kind) + value + b"\0" * (-length % 4)


def text(raw: bytes | None) -> str | None:
    """A NUL-terminated string attribute (None stays None)."""
    return None if raw is None else raw.split(b"\0", 1)[0].decode(errors="replace")


def error_code(header: Header) -> int:
    """The errno of an NLMSG_ERROR (0: an ACK)."""
    (code,) = NLMSGERR.unpack_from(header.data, NLMSGHDR.size)
    return -int(code)


_DUMP_BODIES = {
    RTM_GETLINK: lambda family: IFINFOMSG.pack(family, 0, 0, 0, 0),
    RTM_GETADDR: lambda family: IFADDRMSG.pack(family, 0, 0, 0, 0),
    RTM_GETNEIGH: lambda family: NDMSG.pack(family, 0, 0, 0, 0),
}


def encode_dump_request(msg_type: int, family: int, seq: int) -> bytes:
    """An RTM_GETLINK (ifinfomsg), RTM_GETADDR (ifaddrmsg) or RTM_GETNEIGH (ndmsg) dump
    request, all entries."""
    body_of = _DUMP_BODIES.get(msg_type)
    if body_of is None:
        raise ValueError(f"no dump request for message type {msg_type}")
    body = body_of(family)
    flags = NLM_F_REQUEST | NLM_F_DUMP
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), msg_type, flags, seq, 0) + body


@dataclass(slots=True)
class DumpReply:
    """One dump exchange, sans-IO: send `request`, feed every datagram that comes back
    until `done`. Datagrams are kept whole (`chunks`); messages of other sequence numbers
    (a late reply to an earlier request) do not end or mark it."""

    msg_type: int
    family: int
    seq: int
    chunks: list[bytes] = field(default_factory=list)
    interrupted: bool = False
    done: bool = False

    @property
    def request(self) -> bytes:
        return encode_dump_request(self.msg_type, self.family, self.seq)

    def feed(self, data: bytes) -> None:
        """Take one datagram; OSError if the kernel refused the dump."""
        self.chunks.append(data)
        for header in split_messages(data):
            if header.seq != self.seq:
                continue
            self.interrupted |= bool(header.flags & NLM_F_DUMP_INTR)
            if header.msg_type == NLMSG_ERROR:
                code = error_code(header)
                if code:
                    raise OSError(code, f"netlink dump {self.msg_type}: {os.strerror(code)}")
            self.done |= header.msg_type in (NLMSG_DONE, NLMSG_ERROR)


def dump_attempts(msg_type: int, family: int, seq: int) -> Iterator[DumpReply]:
    """The exchanges of one dump: the next attempt comes only when the kernel marked the
    last one interrupted (the table changed under it). The caller runs each to `done`;
    the last one yielded holds the answer. Sequence numbers are distinct per attempt."""
    for attempt in range(DUMP_ATTEMPTS):
        reply = DumpReply(msg_type, family, seq * DUMP_ATTEMPTS + attempt)
        yield reply
        if not reply.interrupted:
            return
        log.info("netlink dump interrupted, retrying msg_type=%d attempt=%d", msg_type, attempt)
