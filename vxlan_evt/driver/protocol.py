"""Docker's legacy remote network driver protocol, decoded into dataclasses.

Pure: bytes or parsed JSON in, typed requests out. Docker sends no useful
Content-Type and sometimes an empty body, so an empty body means `{}`. A
malformed request is a `UserError`: Docker shows our message to the user.
"""

from __future__ import annotations

import ipaddress
import json
import re
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


# Docker's requests are a few KiB; anything near this is not Docker.
MAX_BODY_BYTES = 1 << 20
# A local network's and every endpoint's ID is 64 hex digits; a swarm network's is 25
# lowercase letters and digits. Link names, ownership marks and state keys are made of
# them, so nothing else may pass: no NUL, no spaces ("A ep=B"), no format characters.
DOCKER_ID = re.compile(r"[0-9a-z]{12,64}")
MAC = re.compile(r"[0-9a-f]{2}(:[0-9a-f]{2}){5}")


def parse_body(body: bytes | str) -> dict[str, Any]:
    """Docker's request body as a dict; empty means no arguments. Malformed JSON of any
    shape (truncated, not an object, nested past Python's recursion limit) is a UserError."""
    if not body.strip():
        return {}
    try:
        document = json.loads(body)
    except ValueError as exc:
        raise UserError(f"request body is not valid JSON: {exc}") from exc
    except RecursionError:
        raise UserError("request body is nested too deeply to be a Docker request") from None
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


def _docker_id(document: Mapping[str, Any], key: str) -> str:
    value = _text(document, key)
    if not DOCKER_ID.fullmatch(value):
        shown = value if len(value) <= 80 else value[:77] + "..."
        raise UserError(
            f"{key} {shown!r} is not a Docker ID (12 to 64 lowercase letters and digits)"
        )
    return value


def _mac(document: Mapping[str, Any], key: str) -> str | None:
    value = _text(document, key, required=False).lower()
    if not value:
        return None
    if not MAC.fullmatch(value):
        raise UserError(f"{key} {value[:40]!r} is not a MAC address (aa:bb:cc:dd:ee:ff)")
    if int(value[:2], 16) & 1:
        raise UserError(f"{key} {value} is a multicast address; a container needs a unicast MAC")
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
            network_id=_docker_id(document, "NetworkID"),
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
        return cls(network_id=_docker_id(document, "NetworkID"))


@dataclass(frozen=True, slots=True)
class EndpointRef:
    """Requests that name an endpoint (Join, Leave, DeleteEndpoint, EndpointOperInfo)."""

    network_id: str
    endpoint_id: str

    @classmethod
    def from_json(cls, document: Mapping[str, Any]) -> EndpointRef:
        return cls(
            network_id=_docker_id(document, "NetworkID"),
            endpoint_id=_docker_id(document, "EndpointID"),
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
        return cls(
            network_id=_docker_id(document, "NetworkID"),
            endpoint_id=_docker_id(document, "EndpointID"),
            address=_cidr("Interface.Address", address) if address else None,
            address6=_cidr("Interface.AddressIPv6", address6) if address6 else None,
            mac=_mac(interface, "MacAddress"),
        )
