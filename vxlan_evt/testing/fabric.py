"""The underlay between lab hosts: a bridge (a dumb switch) in its own network namespace.

Each attached host gets a veth whose far end is its `eth1`, with 10.77.0.N/24 (and
fd77::N/64 without DAD). Multicast snooping is off, so the bridge floods multicast like a
cheap switch and VXLAN multicast groups work without an IGMP querier. Nothing touches the
root netns: the veth pair is made in the fabric netns and one end moved into the host.
"""

from __future__ import annotations

import contextlib
import re
import secrets
from collections.abc import Sequence
from pathlib import Path
from types import TracebackType

from vxlan_evt.testing.lab import LabHost
from vxlan_evt.testing.labowner import OwnerRecord, teardown_namespace
from vxlan_evt.testing.labsys import LAB_PREFIX, LabError, default_base_dir, run_cmd

FABRIC_PREFIX = f"{LAB_PREFIX}fab-"


class Fabric:
    """One switch; `attach(host)` plugs a host in. Use as a context manager or `close()`."""

    def __init__(
        self,
        *,
        subnet: str = "10.77.0",
        ipv6_prefix: str | None = "fd77::",
        mtu: int = 1500,
        base_dir: Path | None = None,
        persistent: bool = False,
    ) -> None:
        netns = f"{FABRIC_PREFIX}{secrets.token_hex(3)}"
        self._init(netns, (base_dir or default_base_dir()) / netns, subnet, ipv6_prefix, mtu)
        self._record = OwnerRecord.for_current_process(netns, persistent=persistent)
        self.dir.mkdir(parents=True)
        self._record.save(self.dir)
        try:
            run_cmd(["ip", "netns", "add", self.netns])
            self._ip("link", "set", "lo", "up")
            self._ip("link", "add", "br0", "mtu", str(mtu), "type", "bridge", "mcast_snooping", "0")
            self._ip("link", "set", "br0", "up")
        except BaseException:
            with contextlib.suppress(Exception):
                self.close()
            raise

    def _init(
        self, netns: str, lab_dir: Path, subnet: str, ipv6_prefix: str | None, mtu: int
    ) -> None:
        self.netns, self.dir = netns, lab_dir
        self.subnet, self.ipv6_prefix, self.mtu = subnet, ipv6_prefix, mtu
        self.addresses: dict[str, str] = {}  # host name -> IPv4 on its eth1
        self.bridge_index: int | None = None  # last octet of br0's own address, if any
        self._closed = False

    @classmethod
    def adopt(cls, lab_dir: Path) -> Fabric:
        """Take over a (persistent) fabric another process created, e.g. from tools/lab."""
        record = OwnerRecord.load(lab_dir)
        if record is None:
            raise LabError(f"{lab_dir}: no fabric recorded there")
        fabric = cls.__new__(cls)
        fabric._init(record.netns, lab_dir, "10.77.0", "fd77::", 1500)
        fabric._record = record
        return fabric

    def __enter__(self) -> Fabric:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _ip(self, *args: str, netns: str | None = None) -> None:
        run_cmd(["ip", "-n", netns or self.netns, *args], where="fabric")

    def _used_ports(self) -> set[int]:
        links = run_cmd(["ip", "-n", self.netns, "-o", "link", "show"], where="fabric").stdout
        return {int(n) for n in re.findall(r"^\d+: p(\d+)@", links, re.MULTILINE)}

    def attach(
        self,
        host: LabHost,
        *,
        ifname: str = "eth1",
        index: int | None = None,
        mtu: int | None = None,
    ) -> str:
        """Plug `host` in; returns its IPv4 address on `ifname` (10.77.0.N, N = port number)."""
        if host.name in self.addresses:
            raise LabError(f"host {host.name} is already attached to the fabric")
        used = self._used_ports()
        n = index if index is not None else max(used, default=0) + 1
        if n in used or n == self.bridge_index:
            raise LabError(f"fabric port p{n} ({self.subnet}.{n}) already taken")
        port, link_mtu = f"p{n}", str(mtu or self.mtu)
        self._ip("link", "add", port, "mtu", link_mtu, "type", "veth", "peer", "name", ifname)
        self._ip("link", "set", ifname, "netns", host.netns)
        self._ip("link", "set", port, "master", "br0", "up")
        self._ip("link", "set", ifname, "mtu", link_mtu, netns=host.netns)
        address = f"{self.subnet}.{n}"
        self._ip("addr", "add", f"{address}/24", "dev", ifname, netns=host.netns)
        if self.ipv6_prefix:
            v6 = f"{self.ipv6_prefix}{n}/64"
            self._ip("addr", "add", v6, "dev", ifname, "nodad", netns=host.netns)
        self._ip("link", "set", ifname, "up", netns=host.netns)
        self.addresses[host.name] = address
        return address

    def address_of(self, host: LabHost | str) -> str:
        return self.addresses[host if isinstance(host, str) else host.name]

    def bridge_address(self, index: int = 254) -> str:
        """Give the switch itself an IPv4 address (10.77.0.`index`/24); returns it. Idempotent.

        Services every host must reach (an etcd, say) then run in the fabric netns itself,
        e.g. `fabric.command(["etcd", ...])`, without taking a host's place on the switch.
        """
        address = f"{self.subnet}.{index}"
        shown = run_cmd(["ip", "-n", self.netns, "-4", "-o", "addr", "show", "dev", "br0"])
        if f" {address}/" not in shown.stdout:
            if index in self._used_ports():
                raise LabError(f"fabric port p{index} already holds {address}")
            self._ip("addr", "add", f"{address}/24", "dev", "br0")
        self.bridge_index = index
        return address

    def command(self, argv: Sequence[str]) -> list[str]:
        """`argv` prefixed so that it runs in the fabric netns (it execs: same pid)."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def close(self) -> None:
        """Delete the switch (and with it every host's eth1); idempotent."""
        if self._closed:
            return
        self._closed = True
        if problems := teardown_namespace(self.netns, self.dir, self._record):
            raise LabError("fabric teardown problems:\n" + "\n".join(problems))
