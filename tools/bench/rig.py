"""Throwaway network namespaces for the benchmarks (plain subprocess code).

Every namespace is named `vxevt-b-<label>-<random>`; every link lives inside one
of them; `Rig.close()` deletes them (which deletes their links), so the root
namespace is never touched. `handle_sigterm()` turns SIGTERM into
KeyboardInterrupt so that `finally` blocks clean up on Ctrl-C and on kill alike.

Miss rig (`miss_rig`): one host and one container behind its bridge:

    container netns: eth0 10.42.255.254/16 (MAC 02:42:0a:2a:ff:fe)
        | veth (host end "ct0", bridge port)
    host netns: br-42 <- vx-42 (vxlan 42: l2miss l3miss proxy nolearning, dev ul0)
        | veth ul0 10.99.0.1/24 <-> ul1 (both ends in the host netns; nothing listens)
"""

from __future__ import annotations

import contextlib
import secrets
import signal
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from types import FrameType

from wire import BRIDGE, CONTAINER_IP, CONTAINER_MAC, LOCAL_VTEP, VNI, VXLAN

PREFIX = "vxevt-b-"


class RigError(RuntimeError):
    """A setup command failed; the message has the command and its stderr."""


def run(argv: list[str], *, input: str | None = None, check: bool = True) -> str:
    """Run a command and return its stdout; RigError with stderr on failure."""
    done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=120)
    if check and done.returncode != 0:
        raise RigError(f"{' '.join(argv)} -> {done.returncode}: {done.stderr.strip()}")
    return done.stdout


def handle_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt in the main thread, like Ctrl-C."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, raise_interrupt)


class Netns:
    """One namespace `vxevt-b-<label>-<hex>`; `close()` deletes it (idempotent)."""

    def __init__(self, label: str) -> None:
        self.name = f"{PREFIX}{label}-{secrets.token_hex(3)}"
        run(["ip", "netns", "add", self.name])
        self._closed = False
        try:
            self.ip("link", "set", "lo", "up")
            # No IPv6 link-local addresses: no router/neighbour solicitations of our own.
            self.exec("sysctl", "-qw", "net.ipv6.conf.default.addr_gen_mode=1")
            self.exec("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        except BaseException:
            self.close()
            raise

    def exec_argv(self, *argv: str) -> list[str]:
        """`argv` wrapped to run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def exec(self, *argv: str, input: str | None = None, check: bool = True) -> str:
        return run(self.exec_argv(*argv), input=input, check=check)

    def ip(self, *args: str, check: bool = True) -> str:
        return run(["ip", "-n", self.name, *args], check=check)

    def bridge(self, *args: str, check: bool = True) -> str:
        return run(["bridge", "-n", self.name, *args], check=check)

    def ifindex(self, ifname: str) -> int:
        return int(self.exec("cat", f"/sys/class/net/{ifname}/ifindex").strip())

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        run(["ip", "netns", "del", self.name], check=False)


@dataclass(slots=True)
class MissRig:
    host: Netns
    container: Netns
    vxlan_ifindex: int

    def flush_entries(self) -> None:
        """Remove every FDB and neighbour entry of vx-42 (so the next run misses afresh)."""
        self.host.bridge("fdb", "flush", "dev", VXLAN, "self")
        self.host.ip("neigh", "flush", "dev", VXLAN, "nud", "all")

    def counts(self) -> tuple[int, int]:
        """(self FDB entries, permanent neighbour entries) on vx-42."""
        fdb = self.host.bridge("fdb", "show", "dev", VXLAN)
        neigh = self.host.ip("neigh", "show", "dev", VXLAN)
        return (
            sum(" self" in line for line in fdb.splitlines()),
            sum("PERMANENT" in line for line in neigh.splitlines()),
        )


def add_vxlan(host: Netns, *, bridge: bool) -> int:
    """Underlay veth ul0/ul1 and vx-42 on ul0 (optionally on br-42); vx-42's ifindex."""
    host.ip("link", "add", "ul0", "type", "veth", "peer", "name", "ul1")
    host.ip("addr", "add", f"{LOCAL_VTEP}/24", "dev", "ul0")
    host.ip("link", "set", "ul0", "up")
    host.ip("link", "set", "ul1", "up")
    host.ip(
        "link", "add", VXLAN, "type", "vxlan", "id", str(VNI), "dev", "ul0",
        "dstport", "4789", "l2miss", "l3miss", "proxy", "nolearning",
    )  # fmt: skip
    if bridge:
        host.ip("link", "add", BRIDGE, "type", "bridge")
        host.ip("link", "set", VXLAN, "master", BRIDGE)
        host.ip("link", "set", BRIDGE, "up")
    host.ip("link", "set", VXLAN, "up")
    return host.ifindex(VXLAN)


@contextlib.contextmanager
def miss_rig() -> Iterator[MissRig]:
    """Host + container namespaces as in the module docstring; deleted on exit."""
    with contextlib.ExitStack() as stack:
        host = Netns("host")
        stack.callback(host.close)
        container = Netns("ct")
        stack.callback(container.close)
        ifindex = add_vxlan(host, bridge=True)
        host.ip(
            "link", "add", "ct0", "type", "veth", "peer", "name", "eth0", "netns", container.name
        )
        host.ip("link", "set", "ct0", "master", BRIDGE)
        host.ip("link", "set", "ct0", "up")
        container.ip("link", "set", "eth0", "address", CONTAINER_MAC, "mtu", "1450")
        container.ip("addr", "add", f"{CONTAINER_IP}/16", "dev", "eth0")
        container.ip("link", "set", "eth0", "up")
        yield MissRig(host, container, ifindex)


def stale_namespaces() -> list[str]:
    """Names of `vxevt-b-*` namespaces (left behind by a killed run)."""
    names = (line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line)
    return [n for n in names if n.startswith(PREFIX)]


def remove_stale() -> list[str]:
    """Delete every `vxevt-b-*` namespace; the names removed."""
    removed = stale_namespaces()
    for name in removed:
        run(["ip", "netns", "del", name], check=False)
    return removed
