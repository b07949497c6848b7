"""The hand-encoded neighbour requests are byte for byte what pyroute2 would encode."""

from __future__ import annotations

import socket
import struct
from ipaddress import ip_address
from typing import Any

import pytest
from pyroute2.netlink.rtnl.ndmsg import ndmsg

from vxlan_evt.kernel.entries import describe_error, encode_request, parse_errors
from vxlan_evt.kernel.wire import (
    NLM_F_ACK,
    NLM_F_APPEND,
    NLM_F_CREATE,
    NLM_F_REPLACE,
    NLM_F_REQUEST,
)
from vxlan_evt.model.addresses import ZERO_MAC
from vxlan_evt.model.entries import Entry, FdbEntry, NeighEntry

MAC = "02:42:0a:05:00:09"


def pyroute2_bytes(
    kind: int, flags: int, seq: int, fields: dict[str, int], attrs: list[Any]
) -> bytes:
    message = ndmsg()
    for name, value in fields.items():
        message[name] = value
    message["attrs"] = attrs
    message["header"]["type"] = kind
    message["header"]["flags"] = flags
    message["header"]["sequence_number"] = seq
    message.encode()
    return bytes(message.data)


CASES: list[tuple[Entry, bool, int, dict[str, int], list[Any]]] = [
    (
        NeighEntry(5, ip_address("10.5.0.9"), MAC), False, 28,
        {"family": socket.AF_INET, "ifindex": 5, "state": 0x80},
        [("NDA_DST", "10.5.0.9"), ("NDA_LLADDR", MAC)],
    ),
    (
        NeighEntry(5, ip_address("fd05::9"), MAC), False, 28,
        {"family": socket.AF_INET6, "ifindex": 5, "state": 0x80},
        [("NDA_DST", "fd05::9"), ("NDA_LLADDR", MAC)],
    ),
    (
        FdbEntry(5, MAC, ip_address("192.0.2.2")), False, 28,
        {"family": socket.AF_BRIDGE, "ifindex": 5, "state": 0xC0, "flags": 0x02},
        [("NDA_LLADDR", MAC), ("NDA_DST", "192.0.2.2")],
    ),
    (
        FdbEntry(5, MAC, ip_address("2001:db8::2")), True, 29,
        {"family": socket.AF_BRIDGE, "ifindex": 5, "state": 0xC0, "flags": 0x02},
        [("NDA_LLADDR", MAC), ("NDA_DST", "2001:db8::2")],
    ),
    (
        NeighEntry(5, ip_address("10.5.0.9"), MAC), True, 29,
        {"family": socket.AF_INET, "ifindex": 5, "state": 0x80},
        [("NDA_DST", "10.5.0.9")],
    ),
]  # fmt: skip


@pytest.mark.parametrize(("entry", "delete", "kind", "fields", "attrs"), CASES)
def test_same_bytes_as_pyroute2(
    entry: Entry, delete: bool, kind: int, fields: dict[str, int], attrs: list[Any]
) -> None:
    flags = NLM_F_REQUEST | NLM_F_ACK | (0 if delete else NLM_F_CREATE | NLM_F_REPLACE)
    expected = pyroute2_bytes(kind, flags, 77, fields, attrs)
    assert encode_request(entry, delete=delete, seq=77, ack=True) == expected


def test_flood_entries_are_appended_not_replaced() -> None:
    request = encode_request(
        FdbEntry(5, ZERO_MAC, ip_address("192.0.2.3")), delete=False, seq=1, ack=False
    )
    (flags,) = struct.unpack_from("=H", request, 6)
    assert flags == NLM_F_REQUEST | NLM_F_CREATE | NLM_F_APPEND


def error_message(seq: int, code: int, text: bytes = b"") -> bytes:
    """An NLMSG_ERROR as the kernel sends it with NETLINK_CAP_ACK (and an extack message)."""
    echoed = struct.pack("=IHHII", 16, 28, 0x405, seq, 0)
    tlv = b""
    if text:
        value = text + b"\0"
        tlv = struct.pack("=HH", 4 + len(value), 1) + value + b"\0" * (-(4 + len(value)) % 4)
    body = struct.pack("=i", code) + echoed + tlv
    flags = 0x200 if text else 0x100
    return struct.pack("=IHHII", 16 + len(body), 2, flags, seq, 0) + body


def test_parse_errors_reads_codes_and_extended_messages() -> None:
    data = error_message(3, -19) + error_message(4, -17, b"FDB entry exists") + error_message(5, 0)
    assert list(parse_errors(data)) == [(3, 19, ""), (4, 17, "FDB entry exists"), (5, 0, "")]
    assert describe_error(19, "") == "No such device"
    assert describe_error(17, "FDB entry exists") == "File exists: FDB entry exists"


def test_parse_errors_stops_at_a_truncated_message() -> None:
    data = error_message(3, -19)
    assert list(parse_errors(data[:-4])) == []


class SilentKernel:
    """A socket whose requests are sent and never answered."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def send(self, data: bytes) -> int:
        self.sent.append(data)
        return len(data)

    def recv(self, size: int) -> bytes:
        raise TimeoutError("timed out")

    def close(self) -> None:
        pass


def test_no_answer_fails_the_batch_instead_of_raising() -> None:
    from vxlan_evt.kernel.entries import EntryWriter

    writer = EntryWriter(batch=2)
    real = writer._socket
    writer._socket = SilentKernel()  # type: ignore[assignment]
    try:
        entries = [NeighEntry(5, ip_address(f"10.5.0.{i}"), MAC) for i in range(3)]
        failures = writer.write(entries)
        assert [entry for entry, _ in failures] == entries
        assert all("no complete answer from the kernel: timed out" in r for _, r in failures)
    finally:
        real.close()


def test_an_entry_that_cannot_be_encoded_fails_alone() -> None:
    from vxlan_evt.kernel.entries import EntryWriter

    writer = EntryWriter()
    real = writer._socket
    kernel = SilentKernel()
    writer._socket = kernel  # type: ignore[assignment]
    try:
        bad = NeighEntry(5, ip_address("10.5.0.1"), "not-a-mac")
        failures = writer.write([bad])
        assert failures == [(bad, failures[0][1])] and "cannot encode" in failures[0][1]
        assert kernel.sent == []  # nothing else to send, nothing sent
    finally:
        real.close()
