"""ARP requests at a steady rate from a container's eth0: one L3 miss per target IP.

Run inside the container's namespace by bench_miss_latency.py:

    ip netns exec <container-ns> python tools/bench/missgen.py --rate 200 --first 0 --count 400

Request k asks for `wire.peer_ip(first + k)` and is sent at start + k/rate (no catch-up
burst beyond what a late wake-up forces). Prints one JSON object: the CLOCK_MONOTONIC
send time in ns of every request, in order (the clock is system wide, so the parent
compares it with its own netlink arrival times).
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time

from vxlan_evt.testing.bench.wire import CONTAINER_IP, CONTAINER_MAC, build_arp_request, peer_ip


def send_requests(ifname: str, rate: float, first: int, count: int) -> list[int]:
    """Send `count` requests at `rate` per second; their send times (monotonic ns)."""
    frames = [
        build_arp_request(CONTAINER_MAC, CONTAINER_IP, peer_ip(first + k)) for k in range(count)
    ]
    sent: list[int] = []
    interval = 1e9 / rate
    # Protocol 0: send only, the kernel queues no received frames here; it reads the
    # ethertype from each frame's own header.
    with socket.socket(socket.AF_PACKET, socket.SOCK_RAW, 0) as sock:
        sock.bind((ifname, 0))
        start = time.monotonic_ns() + 5_000_000
        for k, frame in enumerate(frames):
            due = start + int(k * interval)
            wait = due - time.monotonic_ns()
            if wait > 0:
                time.sleep(wait / 1e9)
            sent.append(time.monotonic_ns())
            sock.send(frame)
    return sent


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ifname", default="eth0")
    parser.add_argument("--rate", type=float, required=True, help="requests per second")
    parser.add_argument("--first", type=int, default=0, help="index of the first peer to ask for")
    parser.add_argument("--count", type=int, required=True)
    args = parser.parse_args(argv)
    sent = send_requests(args.ifname, args.rate, args.first, args.count)
    json.dump({"sent_ns": sent}, sys.stdout)
    return 0


if __name__ == "__main__":
    sys.exit(main())
