"""Record real rtnetlink notifications as test fixtures for the pure decoder.

Builds the two-host rig of vxlan_evt/testing/netns.py in throwaway `vxevt-t-*` namespaces,
listens in host A's namespace (RTMGRP_LINK | RTMGRP_NEIGH) and, step by step, changes
links, programs FDB and neighbour entries, and triggers L2 and L3 misses from the
container behind the bridge. Each step's raw bytes (datagrams concatenated) go to
`<out>/<step>.bin`; `README.md` there lists what each step did. Needs root:

    /tmp/venv/bin/python tools/capture_netlink.py [--out tests/unit/fixtures/netlink]
    /tmp/venv/bin/python tools/capture_netlink.py --addresses   # only the addr_*.bin files
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

from vxlan_evt.kernel.sockets import dump_blocking, open_netlink_socket
from vxlan_evt.kernel.wire import (
    RTM_GETADDR,
    RTM_GETLINK,
    RTM_GETNEIGH,
    RTMGRP_IPV4_IFADDR,
    RTMGRP_IPV6_IFADDR,
    RTMGRP_LINK,
    RTMGRP_NEIGH,
    split_messages,
)
from vxlan_evt.testing.netns import VxlanHost, add_underlay, add_vxlan_host, namespaces

ROOT = Path(__file__).resolve().parent.parent

UNKNOWN_MAC = "02:42:c0:a8:2a:99"


def collect(sock: socket.socket, *, quiet: float = 0.4, limit: float = 10.0) -> bytes:
    """Everything that arrives until the socket has been silent for `quiet` seconds."""
    chunks: list[bytes] = []
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        readable, _, _ = select.select([sock], [], [], quiet)
        if not readable:
            break
        chunks.append(sock.recv(1 << 20))
    return b"".join(chunks)


def sync_dump(netns: str, msg_type: int, family: int = socket.AF_UNSPEC) -> bytes:
    """A whole dump reply (through NLMSG_DONE), as the listener would read it."""
    with open_netlink_socket(netns) as sock:
        sock.settimeout(10.0)
        return b"".join(dump_blocking(sock, msg_type, 1, family))


class Recorder:
    def __init__(self, sock: socket.socket, out: Path) -> None:
        self.sock, self.out = sock, out
        self.notes: list[str] = []

    def step(self, name: str, what: str, action: Callable[[], object]) -> None:
        """Run `action`, write what it caused to `<name>.bin`; leftovers are dropped first."""
        collect(self.sock, quiet=0.2)
        action()
        self.write(name, what, collect(self.sock))

    def write(self, name: str, what: str, data: bytes) -> None:
        (self.out / f"{name}.bin").write_bytes(data)
        count = sum(1 for _ in split_messages(data))
        self.notes.append(f"* `{name}.bin` ({count} messages, {len(data)} bytes): {what}")
        print(f"{name}.bin: {count} messages, {len(data)} bytes", file=sys.stderr)


def capture(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    with namespaces("ha", "ca", "hb", "cb") as (ha, ca, hb, cb):
        a, b = VxlanHost(ha, ca, 1, 42), VxlanHost(hb, cb, 2, 42)
        with open_netlink_socket(
            ha.name, groups=RTMGRP_LINK | RTMGRP_NEIGH, rcvbuf=8 << 20
        ) as sock:
            rec = Recorder(sock, out)
            vx, ip, bridge = a.vxlan, ha.ip, ha.bridge

            def setup() -> None:
                add_underlay(a, b)
                add_vxlan_host(a)
                add_vxlan_host(b)

            rec.step(
                "setup",
                "host A built: ul0 (veth, 10.99.0.1/24) ifindex 2, vx-42 (vxlan id 42, "
                "l2miss l3miss proxy nolearning) 3, br-42 4, ct0 5 (veth to container A)",
                setup,
            )
            rec.write(
                "link_dump", "RTM_GETLINK dump reply after setup", sync_dump(ha.name, RTM_GETLINK)
            )
            rec.step(
                "link_mtu",
                "ip link set vx-42 mtu 1400",
                lambda: ip("link", "set", vx, "mtu", "1400"),
            )
            rec.step("link_down", "ip link set vx-42 down", lambda: ip("link", "set", vx, "down"))
            rec.step("link_up", "ip link set vx-42 up", lambda: ip("link", "set", vx, "up"))
            rec.step(
                "link_alias",
                "ip link set vx-42 alias vxlan-evt:n1",
                lambda: ip("link", "set", vx, "alias", "vxlan-evt:n1"),
            )

            def fdb() -> None:
                bridge(
                    "fdb",
                    "add",
                    b.container_mac,
                    "dev",
                    vx,
                    "dst",
                    b.underlay_ip,
                    "self",
                    "permanent",
                )
                bridge(
                    "fdb", "add", "02:42:c0:a8:2a:03", "dev", vx, "dst", "10.99.0.3",
                    "port", "4790", "vni", "43", "self", "permanent",
                )  # fmt: skip
                bridge("fdb", "del", "02:42:c0:a8:2a:03", "dev", vx, "self")

            rec.step(
                "fdb",
                "fdb add 02:42:c0:a8:2a:02 dst 10.99.0.2; add ...:03 dst 10.99.0.3 port 4790 "
                "vni 43; del ...:03 (all on vx-42, self permanent)",
                fdb,
            )

            def neigh() -> None:
                ip(
                    "neigh",
                    "add",
                    b.container_ip,
                    "lladdr",
                    b.container_mac,
                    "dev",
                    vx,
                    "nud",
                    "permanent",
                )
                ip(
                    "neigh",
                    "replace",
                    b.container_ip,
                    "lladdr",
                    "02:42:c0:a8:2a:22",
                    "dev",
                    vx,
                    "nud",
                    "permanent",
                )
                ip("neigh", "del", b.container_ip, "dev", vx)

            rec.step(
                "neigh",
                "neigh add 192.168.42.2 lladdr 02:42:c0:a8:2a:02; replace with ...:22; del "
                "(on vx-42, nud permanent)",
                neigh,
            )
            ip(
                "neigh",
                "add",
                "192.168.42.3",
                "lladdr",
                "02:42:c0:a8:2a:03",
                "dev",
                vx,
                "nud",
                "permanent",
            )
            rec.write(
                "neigh_dump",
                "RTM_GETNEIGH AF_UNSPEC dump (ARP/ND only, no FDB); vx-42 holds "
                "192.168.42.3 -> 02:42:c0:a8:2a:03",
                sync_dump(ha.name, RTM_GETNEIGH),
            )
            rec.write(
                "fdb_dump",
                "RTM_GETNEIGH AF_BRIDGE dump: bridge and vxlan FDB; vx-42 holds "
                "02:42:c0:a8:2a:02 dst 10.99.0.2",
                sync_dump(ha.name, RTM_GETNEIGH, socket.AF_BRIDGE),
            )
            rec.step(
                "l3miss",
                "container A pings 192.168.42.2 (no neigh entry on vx-42): L3 miss",
                lambda: ca.exec("ping", "-c1", "-W1", b.container_ip, check=False),
            )
            rec.step(
                "l3miss6",
                "container A pings fd42::2: IPv6 L3 miss",
                lambda: ca.exec("ping", "-6", "-c1", "-W1", b.container_ip6, check=False),
            )

            def l2miss() -> None:
                ca.ip(
                    "neigh",
                    "replace",
                    "192.168.42.99",
                    "lladdr",
                    UNKNOWN_MAC,
                    "dev",
                    "eth0",
                    "nud",
                    "permanent",
                )
                ca.exec("ping", "-c1", "-W1", "192.168.42.99", check=False)

            rec.step(
                "l2miss",
                f"container A pings 192.168.42.99 at {UNKNOWN_MAC} (static): L2 miss",
                l2miss,
            )
            rec.step(
                "link_nomaster",
                "ip link set ct0 nomaster (AF_BRIDGE RTM_DELLINK, not a deletion)",
                lambda: ip("link", "set", "ct0", "nomaster"),
            )
            rec.step("link_del", "ip link del ct0", lambda: ip("link", "del", "ct0"))
    readme = [
        "# Captured rtnetlink messages",
        "",
        "Written by `tools/capture_netlink.py` (kernel " + os.uname().release + "); re-run it",
        "to refresh. Each file is the raw datagrams one step caused, concatenated, as seen",
        "by a socket in host A's netns bound to RTMGRP_LINK | RTMGRP_NEIGH.",
        "",
        *rec.notes,
        "",
    ]
    (out / "README.md").write_text("\n".join(readme))


ADDRESS_NOTES = "## Addresses (`--addresses`: a socket bound to the IPv4/IPv6 address groups)"


def capture_addresses(out: Path) -> None:
    """Address notifications on host A's br-42 (ifindex 4): a host joining its segment."""
    out.mkdir(parents=True, exist_ok=True)
    with namespaces("ha", "ca", "hb", "cb") as (ha, ca, hb, cb):
        a, b = VxlanHost(ha, ca, 1, 42), VxlanHost(hb, cb, 2, 42)
        add_underlay(a, b)
        add_vxlan_host(a)
        with open_netlink_socket(
            ha.name, groups=RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR, rcvbuf=8 << 20
        ) as sock:
            rec = Recorder(sock, out)
            br = a.bridge
            rec.write("addr_dump", "RTM_GETADDR dump after setup", sync_dump(ha.name, RTM_GETADDR))
            rec.step(
                "addr_add",
                f"ip addr add 192.168.42.200/24 dev {br}",
                lambda: ha.ip("addr", "add", "192.168.42.200/24", "dev", br),
            )
            rec.step(
                "addr_add6",
                f"ip addr add fd42::200/64 dev {br} nodad",
                lambda: ha.ip("addr", "add", "fd42::200/64", "dev", br, "nodad"),
            )
            rec.step(
                "addr_del",
                f"ip addr del 192.168.42.200/24 dev {br}",
                lambda: ha.ip("addr", "del", "192.168.42.200/24", "dev", br),
            )
    readme = out / "README.md"
    kept = readme.read_text().split(ADDRESS_NOTES)[0].rstrip("\n") if readme.exists() else ""
    readme.write_text("\n".join([kept, "", ADDRESS_NOTES, "", *rec.notes, ""]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", type=Path, default=ROOT / "tests/unit/fixtures/netlink")
    parser.add_argument("--addresses", action="store_true", help="only the address steps")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("needs root: creates network namespaces")
    if args.addresses:
        capture_addresses(args.out)
    else:
        capture(args.out)


if __name__ == "__main__":
    main()
