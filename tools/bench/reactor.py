"""The reference miss answerer: the least code that can answer an L3 miss.

Run inside the host's namespace by bench_miss_latency.py:

    ip netns exec <host-ns> python tools/bench/reactor.py --peers peers.json

A blocking netlink socket on RTMGRP_NEIGH; for every L3 miss (RTM_GETNEIGH with an
IP) on vx-42 whose IP is in the peers file, one line to a long-running
`ip -force -batch -` (neigh replace ... nud permanent) and one to a long-running
`bridge -force -batch -` (fdb replace ... self permanent). Everything already queued
on the socket is read before the pipes are flushed, so a burst is one write each.
Prints "ready" once subscribed; exits on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import signal
import socket
import subprocess
import sys
from pathlib import Path
from types import FrameType
from typing import IO

from vxlan_evt.kernel.wire import RTMGRP_NEIGH, SO_RCVBUFFORCE
from vxlan_evt.testing.bench.wire import VXLAN, parse_neigh_messages, read_peers_file


class Stop(Exception):
    """Raised by the signal handler."""


def _stop(signum: int, frame: FrameType | None) -> None:
    raise Stop


def answer_lines(
    data: bytes, ifindex: int, peers: dict[str, tuple[str, str]]
) -> tuple[list[str], list[str]]:
    """(ip lines, bridge lines) answering the L3 misses in one datagram."""
    neigh: list[str] = []
    fdb: list[str] = []
    for msg in parse_neigh_messages(data):
        if msg.kind != "miss" or msg.ifindex != ifindex or msg.ip is None:
            continue
        found = peers.get(msg.ip)
        if found is None:
            continue
        mac, vtep = found
        neigh.append(f"neigh replace {msg.ip} lladdr {mac} dev {VXLAN} nud permanent\n")
        fdb.append(f"fdb replace {mac} dev {VXLAN} dst {vtep} self permanent\n")
    return neigh, fdb


def serve(sock: socket.socket, ifindex: int, peers: dict[str, tuple[str, str]]) -> None:
    """Answer misses until Stop; each batch is one write per batch process."""
    ip = subprocess.Popen(["ip", "-force", "-batch", "-"], stdin=subprocess.PIPE, text=True)
    bridge = subprocess.Popen(["bridge", "-force", "-batch", "-"], stdin=subprocess.PIPE, text=True)
    pipes: list[tuple[subprocess.Popen[str], IO[str]]] = []
    for process in (ip, bridge):
        assert process.stdin is not None
        pipes.append((process, process.stdin))
    try:
        print("ready", flush=True)
        while True:
            neigh, fdb = answer_lines(sock.recv(1 << 20), ifindex, peers)
            while True:
                try:
                    more = sock.recv(1 << 20, socket.MSG_DONTWAIT)
                except BlockingIOError:
                    break
                extra_neigh, extra_fdb = answer_lines(more, ifindex, peers)
                neigh += extra_neigh
                fdb += extra_fdb
            for (_, stream), lines in zip(pipes, (neigh, fdb), strict=True):
                if lines:
                    stream.write("".join(lines))
                    stream.flush()
    finally:
        for process, stream in pipes:
            stream.close()
            try:
                process.wait(5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peers", type=Path, required=True)
    parser.add_argument("--rcvbuf", type=int, default=8 << 20)
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    peers = read_peers_file(args.peers)
    ifindex = socket.if_nametoindex(VXLAN)
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
    sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, args.rcvbuf)
    sock.bind((0, RTMGRP_NEIGH))
    try:
        serve(sock, ifindex, peers)
    except Stop:
        pass
    finally:
        sock.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
