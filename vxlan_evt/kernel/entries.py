"""Write and delete FDB and neighbour entries on vxlan devices, many per system call.

Why not pyroute2 here: its `IPRoute.neigh()`/`fdb()` cost one request, one wait for
the ACK and one full marshal per entry (~1.3k entries/s measured by
tools/bench/bench_burst.py, against ~57k/s for `bridge -batch`), and even its
message class alone encodes only ~6k ndmsg/s. An ndmsg is a fixed 12-byte header
and two attributes, so `EntryWriter` encodes them with `struct` and sends up to
`batch` requests in one datagram on its own NETLINK_ROUTE socket, asking for an
ACK on the last one only: the kernel answers every failed request anyway, so the
failures come back by sequence number. Link changes stay on pyroute2; dumps are
`kernel.sockets`'s, parsed by `kernel.decode`.

The pyroute2-documented trap (DESIGN.md) applies to the raw message as well: an
FDB write without NTF_SELF and a permanent state lands in the *bridge* FDB, not
the vxlan device's. Every FDB request here carries both. The all-zeros MAC
(flooding to one VTEP) is *appended*: there is one such entry per remote VTEP.
"""

from __future__ import annotations

import errno
import itertools
import os
import socket
import struct
from collections.abc import Iterator, Sequence
from ipaddress import IPv4Address

from vxlan_evt.kernel.wire import (
    NDA_DST,
    NDA_LLADDR,
    NDMSG,
    NETLINK_CAP_ACK,
    NETLINK_EXT_ACK,
    NLM_F_ACK,
    NLM_F_ACK_TLVS,
    NLM_F_APPEND,
    NLM_F_CREATE,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
    NLMSG_ERROR,
    NLMSGERR,
    NLMSGERR_ATTR_MSG,
    NLMSGHDR,
    NTF_SELF,
    NUD_NOARP,
    NUD_PERMANENT,
    RTM_DELNEIGH,
    RTM_NEWNEIGH,
    SOL_NETLINK,
    Header,
    TruncatedError,
    attributes,
    encode_attribute,
    error_code,
    split_messages,
    text,
)
from vxlan_evt.model.addresses import ZERO_MAC
from vxlan_evt.model.entries import Entry, FdbEntry, NeighEntry

# Deleting what is already gone is success: the goal state is reached.
_ABSENT = (errno.ENOENT, errno.ENODEV)


def _mac(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def encode_request(entry: Entry, *, delete: bool, seq: int, ack: bool) -> bytes:
    """One RTM_NEWNEIGH/RTM_DELNEIGH request for `entry` (pure; no socket)."""
    flags = NLM_F_REQUEST | (NLM_F_ACK if ack else 0)
    if isinstance(entry, NeighEntry):
        family = socket.AF_INET if isinstance(entry.ip, IPv4Address) else socket.AF_INET6
        header = NDMSG.pack(family, entry.ifindex, NUD_PERMANENT, 0, 0)
        attributes = encode_attribute(NDA_DST, entry.ip.packed)
        if not delete:
            attributes += encode_attribute(NDA_LLADDR, _mac(entry.mac))
    else:
        header = NDMSG.pack(socket.AF_BRIDGE, entry.ifindex, NUD_PERMANENT | NUD_NOARP, NTF_SELF, 0)
        attributes = encode_attribute(NDA_LLADDR, _mac(entry.mac)) + encode_attribute(
            NDA_DST, entry.dst.packed
        )
    if not delete:
        flags |= NLM_F_CREATE | (NLM_F_APPEND if _is_flood(entry) else NLM_F_REPLACE)
    body = header + attributes
    kind = RTM_DELNEIGH if delete else RTM_NEWNEIGH
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), kind, flags, seq, 0) + body


def _is_flood(entry: Entry) -> bool:
    return isinstance(entry, FdbEntry) and entry.mac == ZERO_MAC


def parse_errors(data: bytes) -> Iterator[tuple[int, int, str]]:
    """(sequence, errno (0 = ACK), kernel's extended message or "") of each NLMSG_ERROR."""
    try:
        for header in split_messages(data):
            if header.msg_type == NLMSG_ERROR and len(header.data) >= NLMSGHDR.size + NLMSGERR.size:
                yield header.seq, error_code(header), _extended_message(header)
    except TruncatedError:
        return


def _extended_message(header: Header) -> str:
    if not header.flags & NLM_F_ACK_TLVS:
        return ""
    # With NETLINK_CAP_ACK the echoed request is only its header.
    start = NLMSGHDR.size + NLMSGERR.size + NLMSGHDR.size
    try:
        return text(attributes(header.data, start).get(NLMSGERR_ATTR_MSG)) or ""
    except ValueError:
        return ""


def describe_error(code: int, message: str) -> str:
    reason = os.strerror(code)
    return f"{reason}: {message}" if message else reason


class EntryWriter:
    """Batched neighbour/FDB writes on one NETLINK_ROUTE socket, in the calling thread.

    Blocking by design: it runs inside `NetlinkWorker`'s thread, one job at a time.
    The socket belongs to the network namespace current when it is created.
    """

    def __init__(self, *, batch: int = 128, timeout: float = 10.0) -> None:
        self.batch = batch
        self.timeout = timeout
        self._socket = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
        try:
            self._socket.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
            self._socket.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
            self._socket.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
            self._socket.settimeout(timeout)
            self._socket.bind((0, 0))
        except BaseException:
            self._socket.close()
            raise
        self._sequence = itertools.count(1)

    def close(self) -> None:
        self._socket.close()

    def __enter__(self) -> EntryWriter:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def write(
        self, entries: Sequence[Entry], *, timeout: float | None = None
    ) -> list[tuple[Entry, str]]:
        """Replace (flood entries: append) every entry; return failures with the reason.
        `timeout` bounds the wait for the kernel's answer for this call only."""
        if timeout is None:
            return self._apply(entries, delete=False)
        self._socket.settimeout(timeout)
        try:
            return self._apply(entries, delete=False)
        finally:
            self._socket.settimeout(self.timeout)

    def delete(self, entries: Sequence[Entry]) -> list[tuple[Entry, str]]:
        """Delete every entry (gone already is fine); return the failures."""
        return self._apply(entries, delete=True)

    def _apply(self, entries: Sequence[Entry], *, delete: bool) -> list[tuple[Entry, str]]:
        failures: list[tuple[Entry, str]] = []
        for start in range(0, len(entries), self.batch):
            chunk = entries[start : start + self.batch]
            failures.extend(self._send_batch(chunk, delete=delete))
        return failures

    def _send_batch(self, chunk: Sequence[Entry], *, delete: bool) -> list[tuple[Entry, str]]:
        failures: list[tuple[Entry, str]] = []
        by_sequence: dict[int, Entry] = {}
        requests: list[bytes] = []
        for entry in chunk:
            seq = next(self._sequence) & 0xFFFFFFFF
            try:
                requests.append(encode_request(entry, delete=delete, seq=seq, ack=False))
            except (ValueError, OverflowError, struct.error) as exc:  # e.g. a malformed MAC
                failures.append((entry, f"cannot encode: {exc}"))
                continue
            by_sequence[seq] = entry
        if not requests:
            return failures
        final = next(reversed(by_sequence))  # the last one sent (sequences may wrap)
        # The last request asks for the ACK that tells the whole batch has been processed.
        requests[-1] = encode_request(by_sequence[final], delete=delete, seq=final, ack=True)
        chunk = list(by_sequence.values())
        try:
            self._socket.send(b"".join(requests))
            while True:
                data = self._socket.recv(1 << 16)
                done = False
                for reply_seq, code, message in parse_errors(data):
                    entry_or_none = by_sequence.get(reply_seq)
                    if entry_or_none is None:
                        continue  # a late answer to an earlier batch that timed out
                    if code and not (delete and code in _ABSENT):
                        failures.append((entry_or_none, describe_error(code, message)))
                    done = done or reply_seq == final
                if done:
                    return failures
        except OSError as exc:  # a timeout included: which requests landed is unknown
            failed = {entry for entry, _ in failures}
            reason = f"no complete answer from the kernel: {exc or type(exc).__name__}"
            return failures + [(entry, reason) for entry in chunk if entry not in failed]
