"""A network as its options describe it: the bridge and VXLAN link specs, validated."""

from __future__ import annotations

from dataclasses import dataclass

from vxlan_evt.model.addresses import IPAddress
from vxlan_evt.model.modes import ResolveMode

DEFAULT_PORT = 4789  # IANA's VXLAN port; the kernel's own default (8472) is pre-IANA


@dataclass(frozen=True, slots=True)
class BridgeSpec:
    """The Linux bridge the containers' veths and the VXLAN port hang off."""

    name: str
    mtu: int | None  # None: the driver derives it from the underlay
    hardware_addr: str | None  # "aa:bb:cc:dd:ee:ff", lower case
    txqlen: int | None


@dataclass(frozen=True, slots=True)
class VxlanSpec:
    """The VXLAN link, field for field the vxlan section of ip-link(8)."""

    name: str
    mtu: int | None
    hardware_addr: str | None
    txqlen: int | None
    vni: int
    vtep_dev: str | None
    src_addr: IPAddress | None
    group: IPAddress | None
    ttl: int | None  # 0 = inherit, as in ip-link
    tos: int | None
    learning: bool = True
    proxy: bool = False
    rsc: bool = False
    l2miss: bool = False
    l3miss: bool = False
    noage: bool = False
    gbp: bool = False
    age: int | None = None
    limit: int | None = None
    port: int = DEFAULT_PORT
    port_low: int | None = None
    port_high: int | None = None


@dataclass(frozen=True, slots=True)
class NetworkOptions:
    """Everything one network's options say, validated."""

    bridge: BridgeSpec
    vxlan: VxlanSpec
    resolve: ResolveMode | None = None  # how misses are answered; None: the daemon's --resolve

    @property
    def underlay_is_ipv6(self) -> bool:
        """An IPv6 underlay costs 70 bytes of VXLAN overhead instead of 50."""
        return any(
            a is not None and a.version == 6 for a in (self.vxlan.group, self.vxlan.src_addr)
        )
