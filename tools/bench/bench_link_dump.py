#!/usr/bin/env python3
"""Reading a link dump: the decoder's hand-written parser against pyroute2's, on the same bytes.

    .venv/bin/python tools/bench/bench_link_dump.py --quick     # 200 links, 5 rounds
    .venv/bin/python tools/bench/bench_link_dump.py             # 1000 links, 20 rounds

Needs root. One throwaway netns `vxevt-b-links-*` holding `--links` links (vxlan devices
with a VNI and bridges as their masters, the shapes the daemon reads), deleted on exit.
Each round takes one RTM_GETLINK dump (`kernel.sockets.dump_blocking` on a socket in the
netns) and times, on those bytes:

* ours: `kernel.decode.parse_links`, which the planner runs on every Docker call
  (through `read_host_facts`) and the listener on every (re)sync and link notification;
* reference: pyroute2's `MarshalRtnl().parse` plus reading the same fields with
  `get_attr` (what the decoder did for links before the wire format was unified).

Both must find the same links with the same name, kind, VNI, MTU and master (checked
every round). Prints links/s for each and the ratio ours/reference (below 1: ours is
slower).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from typing import Any

from vxlan_evt.kernel.decode import parse_links
from vxlan_evt.kernel.sockets import dump_blocking, open_netlink_socket
from vxlan_evt.kernel.wire import RTM_GETLINK
from vxlan_evt.testing.bench.rig import Netns, handle_sigterm
from vxlan_evt.testing.bench.stats import format_table, median, rate
from vxlan_evt.testing.pyroute2_reference import pyroute2_links

Fields = tuple[str, str | None, int | None, int | None, int | None]


def pyroute2_fields(chunks: Sequence[bytes]) -> dict[int, Fields]:
    """The reference: pyroute2's generic decoder, then the fields the daemon reads."""
    return {
        link.ifindex: (link.ifname, link.kind, link.vni, link.mtu, link.master)
        for link in pyroute2_links(chunks)
        if link is not None
    }


def our_fields(chunks: Sequence[bytes]) -> dict[int, Fields]:
    return {
        index: (link.ifname, link.kind, link.vni, link.mtu, link.master)
        for index, link in parse_links(chunks).items()
    }


def add_links(host: Netns, count: int) -> None:
    """`count` links: pairs of a bridge and a vxlan device (VNI 1000 + i) enslaved to it."""
    lines = []
    for i in range(count // 2):
        lines.append(f"link add br-{i} type bridge")
        lines.append(f"link add vx-{i} type vxlan id {1000 + i} dstport 4789 nolearning")
        lines.append(f"link set vx-{i} master br-{i}")
    host.exec("ip", "-batch", "-", input="\n".join(lines) + "\n")


def timed(parse: Any, chunks: Sequence[bytes]) -> tuple[float, dict[int, Fields]]:
    start = time.perf_counter()
    result = parse(chunks)
    return time.perf_counter() - start, result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="200 links, 5 rounds")
    parser.add_argument("--links", type=int, help="links in the netns (default 1000)")
    parser.add_argument("--rounds", type=int, help="rounds (default 20, quick 5)")
    args = parser.parse_args(argv)
    links = args.links or (200 if args.quick else 1000)
    rounds = args.rounds or (5 if args.quick else 20)
    handle_sigterm()
    started = time.monotonic()
    host = Netns("links")
    try:
        add_links(host, links)
        ours_times, reference_times = [], []
        count = 0
        for _ in range(rounds):
            with open_netlink_socket(host.name) as sock:
                sock.settimeout(10.0)
                chunks = dump_blocking(sock, RTM_GETLINK, 1)
            ours_s, ours = timed(our_fields, chunks)
            reference_s, reference = timed(pyroute2_fields, chunks)
            if ours != reference:
                wrong = sorted(
                    k for k in ours.keys() | reference.keys() if ours.get(k) != reference.get(k)
                )
                print(f"parsers disagree on links {wrong[:10]}", file=sys.stderr)
                return 1
            count = len(ours)
            ours_times.append(ours_s)
            reference_times.append(reference_s)
        ours_median, reference_median = median(ours_times), median(reference_times)
        print(f"Link dump of {count} links, median of {rounds} round(s):")
        rows = [
            [
                "ours: decode.parse_links",
                f"{ours_median * 1000:.2f}",
                f"{rate(count, ours_median):,.0f}",
            ],
            [
                "reference: pyroute2 MarshalRtnl + get_attr",
                f"{reference_median * 1000:.2f}",
                f"{rate(count, reference_median):,.0f}",
            ],
        ]
        print(format_table(["parser", "ms", "links/s"], rows))
        print(f"\nours/reference {reference_median / ours_median:.1f}")
        print(f"took {time.monotonic() - started:.0f} s")
        return 0
    finally:
        host.close()


if __name__ == "__main__":
    sys.exit(main())
