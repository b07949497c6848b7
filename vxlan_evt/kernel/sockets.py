"""Netlink sockets: open one (in another network namespace if asked) and run a dump on it.

The one dump loop: `wire.dump_attempts` decides what to send and when a dump is complete
or must be retried; `dump` drives it on a trio socket, `dump_blocking` on a plain one
(the netlink worker's thread and the capture tool).
"""

from __future__ import annotations

import ctypes
import os
import socket
import threading
from collections.abc import Callable
from functools import partial

import trio

from vxlan_evt.kernel.wire import RECV_SIZE, SO_RCVBUFFORCE, DumpReply, dump_attempts

CLONE_NEWNET = 0x40000000


def _setns(fd: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, CLONE_NEWNET) != 0:
        code = ctypes.get_errno()
        raise OSError(code, f"setns: {os.strerror(code)}")


def _make_socket(groups: int, rcvbuf: int | None) -> socket.socket:
    sock = socket.socket(
        socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, socket.NETLINK_ROUTE
    )
    try:
        if rcvbuf is not None:
            try:  # FORCE ignores net.core.rmem_max but needs CAP_NET_ADMIN
                sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except PermissionError:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.bind((0, groups))
    except BaseException:
        sock.close()
        raise
    return sock


def socket_in_netns(netns: str, make: Callable[[], socket.socket]) -> socket.socket:
    """`make()` run inside network namespace `netns` (a name under /run/netns or a path).

    A socket stays in the netns it was created in, so only creation needs the namespace.
    That happens in a throwaway thread (setns is per thread) that switches back before it
    ends: even if switching back failed, no thread of ours is ever left in the wrong
    namespace. Blocking; call it via `trio.to_thread.run_sync` from async code.
    """
    path = netns if "/" in netns else f"/run/netns/{netns}"
    result: list[socket.socket] = []
    failure: list[BaseException] = []

    def work() -> None:
        try:
            original = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    _setns(target)
                    try:
                        result.append(make())
                    finally:
                        _setns(original)
                finally:
                    os.close(target)
            finally:
                os.close(original)
        except BaseException as exc:
            failure.append(exc)

    thread = threading.Thread(target=work, name=f"netns-socket-{netns}", daemon=True)
    thread.start()
    thread.join()
    if failure:
        for sock in result:
            sock.close()
        raise failure[0]
    return result[0]


def open_netlink_socket(
    netns: str | None = None, *, groups: int = 0, rcvbuf: int | None = None
) -> socket.socket:
    """A bound NETLINK_ROUTE socket, created inside network namespace `netns` if given."""
    if netns is None:
        return _make_socket(groups, rcvbuf)
    return socket_in_netns(netns, partial(_make_socket, groups, rcvbuf))


async def dump(
    sock: trio.socket.SocketType, msg_type: int, seq: int, family: int = socket.AF_UNSPEC
) -> list[bytes]:
    """Run one dump to NLMSG_DONE on a socket used for nothing else; raw datagrams back.

    Note: an AF_UNSPEC RTM_GETNEIGH dump returns ARP/ND only; FDB needs AF_BRIDGE.
    """
    reply: DumpReply | None = None
    for reply in dump_attempts(msg_type, family, seq):
        await sock.send(reply.request)
        while not reply.done:
            reply.feed(await sock.recv(RECV_SIZE))
    assert reply is not None
    return reply.chunks


def dump_blocking(
    sock: socket.socket, msg_type: int, seq: int, family: int = socket.AF_UNSPEC
) -> list[bytes]:
    """`dump` for a blocking socket (give it a timeout: a dead kernel reply raises)."""
    reply: DumpReply | None = None
    for reply in dump_attempts(msg_type, family, seq):
        sock.send(reply.request)
        while not reply.done:
            reply.feed(sock.recv(RECV_SIZE))
    assert reply is not None
    return reply.chunks
