"""Docker's legacy remote network driver protocol, decoded into dataclasses.

Pure: bytes or parsed JSON in, typed requests out. Docker sends no useful
Content-Type and sometimes an empty body, so an empty body means `{}`. A
malformed request is a `UserError`: Docker shows our message to the user.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from vxlan_evt.model.errors import UserError

PLUGIN_CONTENT_TYPE = "application/vnd.docker.plugins.v1+json"
GENERIC_OPTIONS_KEY = "com.docker.network.generic"
# The plugin interfaces one socket may serve, in the order `Plugin.Activate` names them.
PLUGIN_INTERFACES = ("NetworkDriver", "IpamDriver")
# One plugin API method: the decoded request body in, the response body out.
Handler = Callable[[Mapping[str, Any]], Awaitable[dict[str, Any]]]


def parse_body(body: bytes | str) -> dict[str, Any]:
    """Docker's request body as a dict; empty means no arguments."""
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise UserError(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(document, dict):
        raise UserError("request body must be a JSON object")
    return document


def implemented_interfaces(methods: Iterable[str]) -> list[str]:
    """What `Plugin.Activate` answers: every interface with a method among those served."""
    served = {method.partition(".")[0] for method in methods}
    return [interface for interface in PLUGIN_INTERFACES if interface in served]


def _text(document: Mapping[str, Any], key: str, *, required: bool = True) -> str:
    value = document.get(key)
    if value is None or value == "":
        if required:
            raise UserError(f"request is missing {key}")
        return ""
    if not isinstance(value, str):
        raise UserError(f"{key} must be a string, got {type(value).__name__}")
    return value


def _cidr(where: str, value: str) -> str:
    """Validate an interface address in CIDR form (host bits allowed) and normalise it."""
    try:
        return str(ipaddress.ip_interface(value))
    except ValueError as exc:
        raise UserError(f"{where}: {value!r} is not an address in CIDR form") from exc


@dataclass(frozen=True, slots=True)
class IPData:
    """One entry of IPv4Data/IPv6Data: the pool and the gateway Docker's IPAM chose."""

    pool: str
    gateway: str | None  # CIDR, e.g. "10.42.0.254/24"

    @classmethod
    def from_json(cls, where: str, document: Any) -> IPData:
        if not isinstance(document, dict):
            raise UserError(f"{where} entries must be objects")
        pool = _text(document, "Pool", required=False)
        gateway = _text(document, "Gateway", required=False)
        return cls(
            pool=_cidr(f"{where}.Pool", pool) if pool else "",
            gateway=_cidr(f"{where}.Gateway", gateway) if gateway else None,
        )


def _ip_data_list(document: Mapping[str, Any], key: str) -> tuple[IPData, ...]:
    entries = document.get(key) or []
    if not isinstance(entries, list):
        raise UserError(f"{key} must be a list")
    return tuple(IPData.from_json(key, entry) for entry in entries)


@dataclass(frozen=True, slots=True)
class CreateNetworkRequest:
    network_id: str
    generic_options: Mapping[str, object]
    ipv4: tuple[IPData, ...]
    ipv6: tuple[IPData, ...]

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> CreateNetworkRequest:
        options = document.get("Options") or {}
        if not isinstance(options, dict):
            raise UserError("Options must be an object")
        generic = options.get(GENERIC_OPTIONS_KEY) or {}
        if not isinstance(generic, dict):
            raise UserError(f"Options[{GENERIC_OPTIONS_KEY!r}] must be an object")
        return cls(
            network_id=_text(document, "NetworkID"),
            generic_options=generic,
            ipv4=_ip_data_list(document, "IPv4Data"),
            ipv6=_ip_data_list(document, "IPv6Data"),
        )

    @property
    def gateways(self) -> tuple[str, ...]:
        return tuple(d.gateway for d in (*self.ipv4, *self.ipv6) if d.gateway)

    @property
    def pools(self) -> tuple[str, ...]:
        return tuple(d.pool for d in (*self.ipv4, *self.ipv6) if d.pool)


@dataclass(frozen=True, slots=True)
class NetworkRef:
    """Requests that only name a network (DeleteNetwork)."""

    network_id: str

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> NetworkRef:
        return cls(network_id=_text(document, "NetworkID"))


@dataclass(frozen=True, slots=True)
class EndpointRef:
    """Requests that name an endpoint (Join, Leave, DeleteEndpoint, EndpointOperInfo)."""

    network_id: str
    endpoint_id: str

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> EndpointRef:
        return cls(
            network_id=_text(document, "NetworkID"), endpoint_id=_text(document, "EndpointID")
        )


@dataclass(frozen=True, slots=True)
class CreateEndpointRequest:
    network_id: str
    endpoint_id: str
    address: str | None  # CIDR
    address6: str | None  # CIDR
    mac: str | None

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> CreateEndpointRequest:
        interface = document.get("Interface") or {}
        if not isinstance(interface, dict):
            raise UserError("Interface must be an object")
        address = _text(interface, "Address", required=False)
        address6 = _text(interface, "AddressIPv6", required=False)
        mac = _text(interface, "MacAddress", required=False)
        return cls(
            network_id=_text(document, "NetworkID"),
            endpoint_id=_text(document, "EndpointID"),
            address=_cidr("Interface.Address", address) if address else None,
            address6=_cidr("Interface.AddressIPv6", address6) if address6 else None,
            mac=mac.lower() or None,
        )
