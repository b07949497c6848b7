"""What Docker told us, kept on disk because Docker never tells it twice.

After a plugin restart Docker does not replay CreateNetwork or
CreateEndpoint, so every record needed to rebuild the datapath (and to clean it
up later) is persisted here. Records are plain frozen dataclasses; the JSON
codec is pure; only `StateStore` touches the disk (atomic replace + fsync).
"""

from __future__ import annotations

import json
import re
import secrets
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from vxlan_evt.model.errors import SystemFailure

STATE_VERSION = 1
INSTANCE_LENGTH = 16
INSTANCE_FORM = re.compile(f"[0-9a-f]{{{INSTANCE_LENGTH}}}")


@dataclass(frozen=True, slots=True)
class NetworkRecord:
    """A network as created: the raw options (re-parsed on load) and the resolved layout."""

    network_id: str
    generic_options: Mapping[str, str]
    vni: int
    vxlan_name: str
    bridge_name: str
    vxlan_mtu: int
    bridge_mtu: int
    gateways: tuple[str, ...] = ()  # CIDRs handed to containers as default routes
    host_addresses: tuple[str, ...] = ()  # CIDRs put on the bridge (local scope only)
    pools: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class EndpointRecord:
    """One container interface: a veth pair whose host end sits on the bridge."""

    network_id: str
    endpoint_id: str
    host_ifname: str
    container_ifname: str
    mac: str
    address: str | None = None  # CIDR
    address6: str | None = None  # CIDR
    joined: bool = False


@dataclass(frozen=True, slots=True)
class DriverState:
    """Every network and endpoint this host's driver knows, by ID."""

    networks: Mapping[str, NetworkRecord] = field(default_factory=dict)
    endpoints: Mapping[str, EndpointRecord] = field(default_factory=dict)
    # This daemon instance's name in the ownership mark of every link it creates ("" until
    # the first start writes one): what proves a marked link is ours, not another's.
    instance: str = ""

    def with_network(self, record: NetworkRecord) -> DriverState:
        return replace(self, networks={**self.networks, record.network_id: record})

    def without_network(self, network_id: str) -> DriverState:
        return replace(
            self,
            networks={k: v for k, v in self.networks.items() if k != network_id},
            endpoints={k: v for k, v in self.endpoints.items() if v.network_id != network_id},
        )

    def with_endpoint(self, record: EndpointRecord) -> DriverState:
        return replace(self, endpoints={**self.endpoints, record.endpoint_id: record})

    def without_endpoint(self, endpoint_id: str) -> DriverState:
        return replace(
            self, endpoints={k: v for k, v in self.endpoints.items() if k != endpoint_id}
        )

    def endpoints_of(self, network_id: str) -> list[EndpointRecord]:
        return [e for e in self.endpoints.values() if e.network_id == network_id]


def encode_state(state: DriverState) -> bytes:
    """The on-disk form: versioned, sorted, human-readable JSON."""
    document = {
        "version": STATE_VERSION,
        "instance": state.instance,
        "networks": {k: _record_to_json(v) for k, v in sorted(state.networks.items())},
        "endpoints": {k: _record_to_json(v) for k, v in sorted(state.endpoints.items())},
    }
    return json.dumps(document, indent=2, sort_keys=True).encode() + b"\n"


def decode_state(data: bytes) -> DriverState:
    """Parse `encode_state` output; a damaged file is a `SystemFailure`, never a silent reset."""
    try:
        document = json.loads(data)
        if document.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported state version {document.get('version')!r}")
        networks = {
            k: NetworkRecord(**_lists_to_tuples(v)) for k, v in document["networks"].items()
        }
        endpoints = {k: EndpointRecord(**v) for k, v in document["endpoints"].items()}
        instance = document.get("instance", "")  # absent in files of 0.1.0
        if not isinstance(instance, str) or (instance and not INSTANCE_FORM.fullmatch(instance)):
            raise ValueError(f"instance {instance!r} is not {INSTANCE_LENGTH} hex digits")
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SystemFailure(f"state file is damaged: {exc}") from exc
    return DriverState(networks=networks, endpoints=endpoints, instance=instance)


def new_instance() -> str:
    """A fresh instance name: random, so two state dirs never share one."""
    return secrets.token_hex(INSTANCE_LENGTH // 2)


def _record_to_json(record: NetworkRecord | EndpointRecord) -> dict[str, Any]:
    document = asdict(record)
    return {k: (list(v) if isinstance(v, tuple) else v) for k, v in document.items()}


def _lists_to_tuples(document: dict[str, Any]) -> dict[str, Any]:
    return {k: (tuple(v) if isinstance(v, list) else v) for k, v in document.items()}
