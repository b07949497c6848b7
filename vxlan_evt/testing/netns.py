"""Throwaway network namespaces wired as two VXLAN "hosts", for listener tests and captures.

Plain subprocess helpers (no pytest) so that `tools/capture_netlink.py` can build the same
rig. Every namespace is named `vxevt-t-*`, every link lives inside one of them, and
`close()` deletes them all (deleting a netns deletes its links, veth peers included), so the
root namespace is never touched. Layout, per host X in (a, b), VNI 42 by default:

    container-X netns: eth0 192.168.42.N/24, fd42::N/64, MAC 02:42:c0:a8:2a:0N
        | veth (host end "ct0", bridge port)
    host-X netns: br-42 (bridge) <- vx-42 (vxlan: l2miss l3miss proxy nolearning) on ul0
        | veth "ul0" 10.99.0.N/24 (underlay)
    host-Y netns
"""

from __future__ import annotations

import contextlib
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field

PREFIX = "vxevt-t-"


class NetnsError(RuntimeError):
    """A setup command failed; the message carries the command and its stderr."""


def run(
    argv: list[str], *, input: str | None = None, check: bool = True, timeout: float = 60
) -> str:
    """Run a command, return stdout; raise NetnsError with stderr on failure."""
    done = subprocess.run(argv, input=input, capture_output=True, text=True, timeout=timeout)
    if check and done.returncode != 0:
        raise NetnsError(f"{' '.join(argv)} -> {done.returncode}: {done.stderr.strip()}")
    return done.stdout


class Netns:
    """One namespace `<prefix><label>-<random>`; a context manager that deletes it.

    `ipv6=False` turns IPv6 off inside it altogether (the benchmarks' namespaces).
    """

    command_timeout: float = 60  # seconds for one `ip`, `bridge` or exec'd command

    def __init__(self, label: str, *, prefix: str = PREFIX, ipv6: bool = True) -> None:
        self.name = f"{prefix}{label}-{secrets.token_hex(3)}"
        run(["ip", "netns", "add", self.name])
        self._closed = False
        try:
            self.ip("link", "set", "lo", "up")
            # No IPv6 link-local addresses: no router/neighbour solicitations of our own,
            # so captures and tests see only the traffic they cause.
            self.exec("sysctl", "-qw", "net.ipv6.conf.default.addr_gen_mode=1")
            if not ipv6:
                self.exec("sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> Netns:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def exec_argv(self, *argv: str) -> list[str]:
        """`argv` wrapped to run inside this namespace."""
        return ["ip", "netns", "exec", self.name, *argv]

    def exec(self, *argv: str, input: str | None = None, check: bool = True) -> str:
        """Run `argv` inside the namespace (`ip netns exec`)."""
        return run(self.exec_argv(*argv), input=input, check=check, timeout=self.command_timeout)

    def ifindex(self, ifname: str) -> int:
        return int(self.exec("cat", f"/sys/class/net/{ifname}/ifindex").strip())

    def ip(self, *args: str, check: bool = True) -> str:
        return run(["ip", "-n", self.name, *args], check=check, timeout=self.command_timeout)

    def bridge(self, *args: str, check: bool = True) -> str:
        return run(["bridge", "-n", self.name, *args], check=check, timeout=self.command_timeout)

    def bridge_batch(self, commands: list[str]) -> None:
        """Many `bridge` commands in one process: the fastest way to flood netlink."""
        run(["bridge", "-n", self.name, "-batch", "-"], input="\n".join(commands) + "\n")

    def close(self) -> None:
        """Delete the namespace; idempotent, never raises for an already-gone netns."""
        if self._closed:
            return
        self._closed = True
        run(["ip", "netns", "del", self.name], check=False)


@dataclass(slots=True)
class VxlanHost:
    """One "host": its netns, the container behind its bridge, and their addresses."""

    host: Netns
    container: Netns
    n: int
    vni: int
    vxlan: str = field(init=False)
    bridge: str = field(init=False)

    def __post_init__(self) -> None:
        self.vxlan, self.bridge = f"vx-{self.vni}", f"br-{self.vni}"

    @property
    def underlay_ip(self) -> str:
        return f"10.99.0.{self.n}"

    @property
    def container_ip(self) -> str:
        return f"192.168.42.{self.n}"

    @property
    def container_ip6(self) -> str:
        return f"fd42::{self.n}"

    @property
    def container_mac(self) -> str:
        return f"02:42:c0:a8:2a:{self.n:02x}"

    def mac(self, role: int) -> str:
        """Fixed MACs for the host's own links (1 vxlan, 2 bridge, 3 ct0): stable captures."""
        return f"02:00:00:00:{self.n:02x}:{role:02x}"

    def ifindex(self, ifname: str) -> int:
        """The ifindex of a link in the host netns."""
        return int(self.host.exec("cat", f"/sys/class/net/{ifname}/ifindex").strip())


def add_vxlan_host(host: VxlanHost) -> None:
    """Create vxlan + bridge + container veth in `host` (underlay ul0 must exist)."""
    h, c = host.host, host.container
    h.ip(
        "link", "add", host.vxlan, "type", "vxlan", "id", str(host.vni), "dev", "ul0",
        "dstport", "4789", "l2miss", "l3miss", "proxy", "nolearning",
    )  # fmt: skip
    h.ip("link", "set", host.vxlan, "address", host.mac(1))
    h.ip("link", "add", host.bridge, "address", host.mac(2), "type", "bridge")
    h.ip("link", "set", host.vxlan, "master", host.bridge)
    h.ip("link", "set", host.vxlan, "up")
    h.ip("link", "set", host.bridge, "up")
    h.ip(
        "link",
        "add",
        "ct0",
        "address",
        host.mac(3),
        "type",
        "veth",
        "peer",
        "name",
        "eth0",
        "netns",
        c.name,
    )
    h.ip("link", "set", "ct0", "master", host.bridge)
    h.ip("link", "set", "ct0", "up")
    c.ip("link", "set", "eth0", "address", host.container_mac, "mtu", "1450")
    c.ip("addr", "add", f"{host.container_ip}/24", "dev", "eth0")
    c.ip("addr", "add", f"{host.container_ip6}/64", "dev", "eth0", "nodad")
    c.ip("link", "set", "eth0", "up")


def add_underlay(a: VxlanHost, b: VxlanHost) -> None:
    """A veth pair `ul0` between the two host namespaces."""
    a.host.ip("link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", b.host.name)
    for h in (a, b):
        h.host.ip("addr", "add", f"{h.underlay_ip}/24", "dev", "ul0")
        h.host.ip("link", "set", "ul0", "up")


@contextlib.contextmanager
def namespaces(*labels: str) -> Iterator[list[Netns]]:
    """Create one netns per label; all are deleted on exit, also after a failure."""
    with contextlib.ExitStack() as stack:
        yield [stack.enter_context(Netns(label)) for label in labels]


@contextlib.contextmanager
def two_hosts(vni: int = 42) -> Iterator[tuple[VxlanHost, VxlanHost]]:
    """Two wired VXLAN hosts with a container each; everything is deleted on exit."""
    with namespaces("ha", "ca", "hb", "cb") as (ha, ca, hb, cb):
        a, b = VxlanHost(ha, ca, 1, vni), VxlanHost(hb, cb, 2, vni)
        add_underlay(a, b)
        add_vxlan_host(a)
        add_vxlan_host(b)
        yield a, b
