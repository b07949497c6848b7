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

import json
from collections.abc import Iterable, Mapping
from typing import Any

from vxlan_evt.model.errors import InvalidOption
from vxlan_evt.model.network import VxlanSpec
from vxlan_evt.peers.table import PeerEndpoint, PeerTable, peer_from_document


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


class MalformedRecord(ValueError):
    """A record in etcd that this version cannot use; the message says why, for the log."""


# etcd holds what every host (and anyone with write access) put there: each record is
# checked before it can become an entry, and a bad one is skipped, never fatal.
MAX_RECORD_BYTES = 64 * 1024


def _document(value: bytes) -> dict[str, Any]:
    if len(value) > MAX_RECORD_BYTES:
        raise MalformedRecord(f"{len(value)} bytes, over {MAX_RECORD_BYTES}")
    try:
        document = json.loads(value)
    except (ValueError, RecursionError) as exc:  # invalid UTF-8 is a ValueError too
        raise MalformedRecord(f"not JSON: {exc}"[:200]) from None
    if not isinstance(document, dict):
        raise MalformedRecord(f"not a JSON object but {type(document).__name__}")
    return document


def decode_endpoint(key: bytes, value: bytes) -> PeerEndpoint:
    """The peer of one `endpoints/<vni>/<host>/<endpoint>/<ip>` key, checked like a
    peers-file entry; the key and the record must agree on the host and the IP."""
    try:
        parts = key.decode().rsplit("/endpoints/", 1)[1].split("/")
    except (UnicodeDecodeError, IndexError):
        raise MalformedRecord("the key is not endpoints/<vni>/<host>/<endpoint>/<ip>") from None
    if len(parts) != 4 or not parts[0].isdigit() or not 0 < int(parts[0]) <= 16_777_215:
        raise MalformedRecord("the key is not endpoints/<vni>/<host>/<endpoint>/<ip>")
    vni, key_host, _, key_ip = int(parts[0]), parts[1], parts[2], parts[3]
    document = _document(value)
    try:
        peer = peer_from_document(vni, document, where="record", source="etcd")
    except InvalidOption as exc:
        raise MalformedRecord(str(exc)) from None
    if peer.host != key_host or str(peer.ip) != key_ip:
        raise MalformedRecord(
            f"the record says host {peer.host!r:.40} ip {peer.ip}, its key {key_host!r:.40} {key_ip!r:.50}"
        )
    return peer


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


def decode_network(value: bytes) -> tuple[dict[str, str], list[str]]:
    """The segment settings and subnets of one `networks/<vni>/<host>` record."""
    document = _document(value)
    settings = document.get("settings", {})
    subnets = document.get("subnets", [])
    if not isinstance(settings, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and len(k) <= 64 and len(v) <= 256
        for k, v in settings.items()
    ):
        raise MalformedRecord("settings must map option names to short strings")
    if not isinstance(subnets, list) or not all(isinstance(n, str) for n in subnets):
        raise MalformedRecord("subnets must be a list of strings")
    return settings, sorted(subnets)


def network_conflict(
    vni: int,
    ours: Mapping[str, str],
    published: bytes,
    *,
    subnets: Iterable[str] = (),
    host: str = "another host",
) -> str | None:
    """A message naming every segment setting (and the subnets) that differ from `host`'s,
    or None. `ours` is `segment_settings(...)` of the network being created. A record that
    cannot be read raises MalformedRecord (the caller logs it and compares the rest)."""
    theirs, their_subnets = decode_network(published)
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
