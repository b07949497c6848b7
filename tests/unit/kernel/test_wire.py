"""The framing rules and the sans-IO dump exchange, without a socket."""

from __future__ import annotations

import errno
import socket

import pytest

from vxlan_evt.kernel.wire import (
    DUMP_ATTEMPTS,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_MULTI,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGERR,
    NLMSGHDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTM_NEWLINK,
    DumpReply,
    attributes,
    dump_attempts,
    encode_attribute,
    encode_dump_request,
    split_messages,
    text,
)


def message(msg_type: int, seq: int, body: bytes = b"", flags: int = NLM_F_MULTI) -> bytes:
    return NLMSGHDR.pack(NLMSGHDR.size + len(body), msg_type, flags, seq, 0) + body


def done(seq: int, flags: int = NLM_F_MULTI) -> bytes:
    return message(NLMSG_DONE, seq, NLMSGERR.pack(0), flags)


def test_a_dump_request_asks_for_everything() -> None:
    (header,) = split_messages(encode_dump_request(RTM_GETNEIGH, socket.AF_BRIDGE, 9))
    assert (header.msg_type, header.seq) == (RTM_GETNEIGH, 9)
    assert header.flags == NLM_F_REQUEST | NLM_F_DUMP
    assert header.data[NLMSGHDR.size] == socket.AF_BRIDGE
    with pytest.raises(ValueError, match="no dump request for message type 16"):
        encode_dump_request(RTM_NEWLINK, socket.AF_UNSPEC, 1)


def test_attributes_round_trip_with_padding() -> None:
    data = encode_attribute(3, b"vx-42\0") + encode_attribute(4, b"\x01")
    assert len(data) % 4 == 0
    assert attributes(data) == {3: b"vx-42\0", 4: b"\x01"}
    assert text(attributes(data)[3]) == "vx-42" and text(None) is None
    with pytest.raises(ValueError, match="bad attribute length"):
        attributes(data[:-4])


def test_a_dump_ends_at_done_and_keeps_whole_datagrams() -> None:
    reply = DumpReply(RTM_GETLINK, socket.AF_UNSPEC, 5)
    first = message(RTM_NEWLINK, 5, b"\0" * 16)
    reply.feed(first)
    assert not reply.done
    second = message(RTM_NEWLINK, 5, b"\0" * 16) + done(5)
    reply.feed(second)
    assert reply.done and not reply.interrupted and reply.chunks == [first, second]


def test_a_late_reply_to_another_request_does_not_end_the_dump() -> None:
    reply = DumpReply(RTM_GETLINK, socket.AF_UNSPEC, 5)
    reply.feed(done(4, NLM_F_MULTI | NLM_F_DUMP_INTR))
    assert not reply.done and not reply.interrupted


def test_a_refused_dump_raises_with_the_kernels_errno() -> None:
    reply = DumpReply(RTM_GETLINK, socket.AF_UNSPEC, 5)
    refusal = message(NLMSG_ERROR, 5, NLMSGERR.pack(-errno.EPERM) + b"\0" * 16, 0)
    with pytest.raises(OSError, match="Operation not permitted") as caught:
        reply.feed(refusal)
    assert caught.value.errno == errno.EPERM


def test_an_interrupted_dump_is_retried_with_a_new_sequence_number() -> None:
    seen: list[int] = []
    for reply in dump_attempts(RTM_GETLINK, socket.AF_UNSPEC, 2):
        seen.append(reply.seq)
        reply.feed(done(reply.seq, NLM_F_MULTI | NLM_F_DUMP_INTR if len(seen) == 1 else 0))
    assert seen == [2 * DUMP_ATTEMPTS, 2 * DUMP_ATTEMPTS + 1]


def test_a_dump_interrupted_every_time_stops_after_the_last_attempt() -> None:
    attempts = list(dump_attempts(RTM_GETLINK, socket.AF_UNSPEC, 1))
    # Not fed, so never done; the generator must not spin: it yields DUMP_ATTEMPTS at most.
    assert len(attempts) == 1
    replies = []
    for reply in dump_attempts(RTM_GETLINK, socket.AF_UNSPEC, 1):
        reply.feed(done(reply.seq, NLM_F_MULTI | NLM_F_DUMP_INTR))
        replies.append(reply)
    assert len(replies) == DUMP_ATTEMPTS and all(r.done for r in replies)
