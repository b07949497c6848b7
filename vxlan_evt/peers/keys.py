"""How the peer table is laid out in etcd, as pure encode/decode functions.

Under the prefix (default `/vxlan-evt/v1/`):

* `hosts/<host>` → `{"host", "vteps"}`, attached to the host's lease;
* `endpoints/<vni>/<host>/<endpoint>/<ip>` → `{"ip", "mac", "vtep", "host", "container"}`
  (one key per address: an endpoint may have an IPv4 and an IPv6 address),
  attached to the host's lease, so a dead host's endpoints vanish when its
  lease expires;
* `networks/<vni>/<host>` → `{"options", "subnets"}`: each host's settings for
  the segment, attached to its lease, so another host creating the same VNI
  differently gets a clear error (and a VNI nobody uses any more is free again).
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Mapping
from typing import Any

from vxlan_evt.driver.options import normalise_mac
from vxlan_evt.model.errors import InvalidOption
from vxlan_evt.model.network import VxlanSpec
from vxlan_evt.peers.table import PeerEndpoint, PeerTable


def endpoints_prefix(prefix: str) -> bytes:
    return f"{prefix}endpoints/".encode()


def endpoint_key(prefix: str, peer: PeerEndpoint) -> bytes:
    return f"{prefix}endpoints/{peer.vni}/{peer.host}/{peer.container}/{peer.ip}".encode()


def host_key(prefix: str, host: str) -> bytes:
    return f"{prefix}hosts/{host}".encode()


def network_key(prefix: str, vni: int, host: str) -> bytes:
    return f"{prefix}networks/{vni}/{host}".encode()


def network_prefix(prefix: str, vni: int) -> bytes:
    return f"{prefix}networks/{vni}/".encode()


def host_of_network_key(key: bytes) -> str:
    return key.decode(errors="replace").rsplit("/", 1)[-1]


def encode_endpoint(peer: PeerEndpoint) -> bytes:
    document = {
        "ip": str(peer.ip),
        "mac": peer.mac,
        "vtep": str(peer.vtep),
        "host": peer.host,
        "container": peer.container,
    }
    return json.dumps(document, sort_keys=True).encode()


def decode_endpoint(key: bytes, value: bytes) -> PeerEndpoint | None:
    """A peer from one `endpoints/` key, or None for anything malformed (logged by the caller)."""
    try:
        vni = int(key.decode().rsplit("/endpoints/", 1)[1].split("/", 1)[0])
        document = json.loads(value)
        return PeerEndpoint(
            vni=vni,
            ip=ipaddress.ip_address(document["ip"]),
            mac=normalise_mac("mac", str(document["mac"])),
            vtep=ipaddress.ip_address(document["vtep"]),
            source="etcd",
            host=document.get("host"),
            container=document.get("container"),
        )
    except (ValueError, KeyError, IndexError, TypeError, AttributeError, InvalidOption):
        return None


def table_from(peers: Mapping[bytes, PeerEndpoint], local: Iterable[PeerEndpoint]) -> PeerTable:
    """Everything etcd says, with this host's own endpoints (always known) last, so they win."""
    return PeerTable.build([*peers.values(), *local])


def segment_settings(vxlan: VxlanSpec) -> dict[str, str]:
    """What every host of one VNI must agree on, parsed and normalised (so `Port` unset and
    `Port=4789`, or `GBP=1` and `GBP=true`, are the same): the UDP port, the multicast
    group (or unicast) and the packet format (GBP). Everything else (miss flags, Proxy,
    learning, ageing, TTL, names, MTUs, Resolve) only shapes this host's own device."""
    return {
        "Port": str(vxlan.port),
        "Group": str(vxlan.group) if vxlan.group is not None else "(unicast)",
        "GBP": "true" if vxlan.gbp else "false",
    }


def encode_network(settings: Mapping[str, str], subnets: Iterable[str] = ()) -> bytes:
    document = {"settings": dict(sorted(settings.items())), "subnets": sorted(subnets)}
    return json.dumps(document, sort_keys=True).encode()


def network_conflict(
    vni: int,
    ours: Mapping[str, str],
    published: bytes,
    *,
    subnets: Iterable[str] = (),
    host: str = "another host",
) -> str | None:
    """A message naming every segment setting (and the subnets) that differ from `host`'s,
    or None. `ours` is `segment_settings(...)` of the network being created."""
    try:
        document: dict[str, Any] = json.loads(published)
        theirs: dict[str, Any] = document.get("settings", {})
        their_subnets = sorted(document.get("subnets", ()))
    except (ValueError, AttributeError, TypeError):
        return None
    differing = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
    details = [
        f"{k}={ours.get(k, '(unset)')} here but {theirs.get(k, '(unset)')} there" for k in differing
    ]
    our_subnets = sorted(subnets)
    if our_subnets and their_subnets and our_subnets != their_subnets:
        details.append(f"subnet {', '.join(our_subnets)} here but {', '.join(their_subnets)} there")
    if not details:
        return None
    return (
        f"VxlanId {vni} is already used on host {host} with other settings: "
        f"{'; '.join(details)}. Every host of one segment needs the same Port, Group, GBP "
        "and subnet (the other options may differ per host)"
    )
