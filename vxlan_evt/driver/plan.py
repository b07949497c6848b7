"""What each Docker call means for the kernel, decided without touching it.

Every function here is pure: it takes the driver state, a decoded request and
`HostFacts` (a snapshot of the kernel's links), and returns new records plus a
list of `Action`s for the netlink edge to carry out. Ownership is written into
every link we create (its ifalias), so cleanup never depends on names alone
and never touches a link we did not make.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vxlan_evt.driver.protocol import CreateEndpointRequest, CreateNetworkRequest
from vxlan_evt.model.errors import Conflict, InvalidOption, NotFound, UserError
from vxlan_evt.model.links import HostFacts, LinkInfo
from vxlan_evt.model.modes import Scope
from vxlan_evt.model.network import NetworkOptions
from vxlan_evt.model.ownership import Ownership, endpoint_alias, network_alias, parse_alias
from vxlan_evt.model.plan import (
    Action,
    AddAddress,
    CreateBridge,
    CreateVeth,
    CreateVxlan,
    DeleteLink,
    SetMaster,
    SetUp,
)
from vxlan_evt.model.state import DriverState, EndpointRecord, NetworkRecord

if TYPE_CHECKING:
    from vxlan_evt.model.links import LinkInfo


DEFAULT_UNDERLAY_MTU = 1500
VXLAN_OVERHEAD_IPV4 = 50
VXLAN_OVERHEAD_IPV6 = 70


# --- kernel snapshot -------------------------------------------------------


def network_of_link(
    ifindex: int, links: Mapping[int, LinkInfo], networks: Mapping[str, NetworkRecord]
) -> NetworkRecord | None:
    """The network a link (by ifindex, in the listener's live table) belongs to, by the
    ownership mark in its ifalias; None for links we did not create or have forgotten."""
    info = links.get(ifindex)
    owner = parse_alias(info.ifalias) if info is not None else None
    return networks.get(owner.network_id) if owner is not None else None


# --- actions -----------------------------------------------------------------


# --- networks ----------------------------------------------------------------


def underlay_mtu(options: NetworkOptions, facts: HostFacts) -> tuple[str | None, int]:
    """The device carrying the tunnel and its MTU: VtepDev, else the default route's."""
    device = options.vxlan.vtep_dev
    if device is None:
        device = facts.default_route_dev6 if options.underlay_is_ipv6 else facts.default_route_dev
    if device is not None and device in facts.links:
        return device, facts.links[device].mtu or DEFAULT_UNDERLAY_MTU
    return device, DEFAULT_UNDERLAY_MTU


def resolve_mtus(options: NetworkOptions, facts: HostFacts) -> tuple[int, int]:
    """(vxlan MTU, bridge MTU): the options, else underlay MTU minus the VXLAN overhead."""
    device, mtu = underlay_mtu(options, facts)
    overhead = VXLAN_OVERHEAD_IPV6 if options.underlay_is_ipv6 else VXLAN_OVERHEAD_IPV4
    ceiling = mtu - overhead
    vxlan_mtu = options.vxlan.mtu if options.vxlan.mtu is not None else ceiling
    if options.vxlan.mtu is not None and options.vxlan.vtep_dev is not None and vxlan_mtu > ceiling:
        raise InvalidOption(
            f"vxlanMTU: {vxlan_mtu} is more than the underlay {device} (MTU {mtu}) can carry "
            f"with {overhead} bytes of VXLAN overhead; use at most {ceiling}"
        )
    bridge_mtu = options.bridge.mtu if options.bridge.mtu is not None else vxlan_mtu
    if bridge_mtu > vxlan_mtu:
        raise InvalidOption(
            f"bridgeMTU: {bridge_mtu} is larger than the vxlan MTU {vxlan_mtu}; containers "
            f"would send frames the vxlan port drops (use at most {vxlan_mtu})"
        )
    return vxlan_mtu, max(bridge_mtu, 68)


def _check_name_free(option: str, name: str, network_id: str, facts: HostFacts) -> None:
    link = facts.links.get(name)
    if link is None:
        return
    owner = parse_alias(link.ifalias)
    if owner is None:
        raise Conflict(
            f"{option}: a link named {name!r} already exists on this host and was not "
            f"created by vxlan-evt; choose another name"
        )
    if owner.network_id != network_id or owner.endpoint_id is not None:
        raise Conflict(
            f"{option}: {name!r} already belongs to vxlan-evt network {owner.network_id[:12]}"
        )


def plan_create_network(
    state: DriverState,
    request: CreateNetworkRequest,
    options: NetworkOptions,
    facts: HostFacts,
    scope: Scope,
) -> tuple[NetworkRecord, list[Action]]:
    """Validate a new network against this host and plan its vxlan + bridge."""
    network_id = request.network_id
    vni = options.vxlan.vni
    for other in state.networks.values():
        if other.network_id != network_id and other.vni == vni:
            raise Conflict(
                f"VxlanId: {vni} is already used by network {other.network_id[:12]} on "
                f"this host (one network per VNI per host)"
            )
    if options.vxlan.vtep_dev is not None and options.vxlan.vtep_dev not in facts.links:
        raise InvalidOption(f"VtepDev: there is no device {options.vxlan.vtep_dev!r} on this host")
    for link in facts.links.values():
        owner = parse_alias(link.ifalias)
        if (
            link.kind == "vxlan"
            and link.vni == vni
            and (owner is None or owner.network_id != network_id)
        ):
            raise Conflict(
                f"VxlanId: {vni} is already used by vxlan link {link.ifname!r} on this host"
            )
    _check_name_free("vxlanName", options.vxlan.name, network_id, facts)
    _check_name_free("bridgeName", options.bridge.name, network_id, facts)
    vxlan_mtu, bridge_mtu = resolve_mtus(options, facts)
    record = NetworkRecord(
        network_id=network_id,
        generic_options={k: str(v) for k, v in request.generic_options.items()},
        vni=vni,
        vxlan_name=options.vxlan.name,
        bridge_name=options.bridge.name,
        vxlan_mtu=vxlan_mtu,
        bridge_mtu=bridge_mtu,
        gateways=request.gateways,
        host_addresses=request.gateways if scope == "local" else (),
        pools=request.pools,
    )
    return record, plan_network_links(record, options, facts, state.instance)


def plan_network_links(
    record: NetworkRecord, options: NetworkOptions, facts: HostFacts, instance: str
) -> list[Action]:
    """Create what is missing and re-attach what came loose; leave the rest as it is (no
    flap). The names must be free or ours (`_check_name_free`): callers check first."""
    alias = network_alias(record.network_id, instance)
    actions: list[Action] = []
    if record.bridge_name not in facts.links:
        actions.append(
            CreateBridge(
                name=record.bridge_name,
                mtu=record.bridge_mtu,
                hardware_addr=options.bridge.hardware_addr,
                txqlen=options.bridge.txqlen,
                alias=alias,
            )
        )
    if record.vxlan_name not in facts.links:
        actions.append(
            CreateVxlan(
                name=record.vxlan_name,
                spec=options.vxlan,
                vtep_dev=options.vxlan.vtep_dev,
                mtu=record.vxlan_mtu,
                master=record.bridge_name,
                alias=alias,
            )
        )
    else:
        actions.extend(_reattach(record.vxlan_name, record.bridge_name, facts))
    present = {_normal_cidr(cidr) for cidr in facts.addresses.get(record.bridge_name, ())}
    actions.extend(
        AddAddress(record.bridge_name, cidr)
        for cidr in record.host_addresses
        if record.bridge_name not in facts.links or _normal_cidr(cidr) not in present
    )
    actions.extend(
        SetUp(name)
        for name in (record.vxlan_name, record.bridge_name)
        if name not in facts.links or not facts.links[name].up
    )
    return actions


def _normal_cidr(cidr: str) -> str:
    return str(ipaddress.ip_interface(cidr))


def _reattach(name: str, bridge: str, facts: HostFacts) -> list[Action]:
    """An existing port whose bridge was recreated (or which was taken off it) goes back."""
    bridge_link = facts.links.get(bridge)
    if bridge_link is not None and facts.links[name].master == bridge_link.ifindex:
        return []
    return [SetMaster(name, bridge)]


def _owned_links(
    facts: HostFacts, network_id: str, instance: str
) -> list[tuple[LinkInfo, Ownership]]:
    """The links marked for `network_id`, by this instance (or before instance marks:
    a network ID names one network, so those are its links too)."""
    owned = []
    for link in facts.links.values():
        owner = parse_alias(link.ifalias)
        if (
            owner is not None
            and owner.network_id == network_id
            and owner.instance in (None, instance)
        ):
            owned.append((link, owner))
    return owned


def _delete_order(items: Iterable[tuple[LinkInfo, Ownership]]) -> list[Action]:
    """Endpoints' veths first, then the vxlan, then the bridge they hang on."""
    rank = {"veth": 0, "vxlan": 1, "bridge": 2}
    ordered = sorted(items, key=lambda item: (rank.get(item[0].kind or "", 0), item[0].ifname))
    return [DeleteLink(link.ifname, link.ifalias or "") for link, _ in ordered]


def plan_delete_network(facts: HostFacts, network_id: str, instance: str) -> list[Action]:
    """Every link this network owns, found by ownership mark so a lost state still cleans up."""
    return _delete_order(_owned_links(facts, network_id, instance))


def provably_ours(owner: Ownership, state: DriverState) -> bool:
    """Whether a marked link is this instance's to delete: its mark names this instance,
    or (marked before instance marks) its network is one the state knows. Anything else
    may be another daemon's, or ours from a state dir that is gone: never deleted."""
    if owner.instance is not None:
        return owner.instance == state.instance
    return owner.network_id in state.networks


def plan_orphans(state: DriverState, facts: HostFacts) -> list[Action]:
    """Our links that belong to no known network or endpoint (leaked by a crash)."""
    orphans = []
    for link in facts.links.values():
        owner = parse_alias(link.ifalias)
        if owner is None or not provably_ours(owner, state):
            continue
        if owner.network_id not in state.networks or (
            owner.endpoint_id is not None and owner.endpoint_id not in state.endpoints
        ):
            orphans.append((link, owner))
    return _delete_order(orphans)


def unproven_marks(state: DriverState, facts: HostFacts) -> list[str]:
    """Names of links marked by vxlan-evt that this instance cannot prove are its own."""
    return sorted(
        link.ifname
        for link in facts.links.values()
        if (owner := parse_alias(link.ifalias)) is not None and not provably_ours(owner, state)
    )


# --- endpoints ---------------------------------------------------------------


def endpoint_ifnames(endpoint_id: str) -> tuple[str, str]:
    """(host end, container end): 13 bytes each, well inside the 15-byte limit."""
    return f"vh{endpoint_id[:11]}", f"vc{endpoint_id[:11]}"


def endpoint_mac(request: CreateEndpointRequest) -> str:
    """A stable locally administered MAC: 02:42 + the IPv4 address, as Docker does."""
    if request.address is not None:
        address = ipaddress.ip_interface(request.address).ip
        if address.version == 4:
            return "02:42:" + ":".join(f"{b:02x}" for b in address.packed)
    digest = hashlib.sha256(request.endpoint_id.encode()).digest()
    return "02:" + ":".join(f"{b:02x}" for b in digest[:5])


def require_network(state: DriverState, network_id: str) -> NetworkRecord:
    record = state.networks.get(network_id)
    if record is None:
        raise NotFound(
            f"network {network_id[:12]} is not known to vxlan-evt on this host "
            f"(was it created with another driver, or was the state dir removed?)"
        )
    return record


def require_endpoint(state: DriverState, network_id: str, endpoint_id: str) -> EndpointRecord:
    require_network(state, network_id)
    record = state.endpoints.get(endpoint_id)
    if record is None or record.network_id != network_id:
        raise NotFound(f"endpoint {endpoint_id[:12]} is not known to vxlan-evt on this host")
    return record


def plan_create_endpoint(
    state: DriverState, request: CreateEndpointRequest, facts: HostFacts
) -> tuple[EndpointRecord, list[Action]]:
    """A veth pair: host end on the bridge, container end with the endpoint's MAC and MTU."""
    network = require_network(state, request.network_id)
    endpoint_id = request.endpoint_id
    host_ifname, container_ifname = endpoint_ifnames(endpoint_id)
    known = state.endpoints.get(endpoint_id)
    if known is not None and known.network_id != request.network_id:
        raise Conflict(
            f"endpoint {endpoint_id[:12]} already exists in network {known.network_id[:12]}; "
            "an endpoint ID belongs to one network"
        )
    for other in state.endpoints.values():
        if other.endpoint_id != endpoint_id and other.host_ifname == host_ifname:
            raise Conflict(
                f"endpoint {endpoint_id[:12]} would take interface {host_ifname!r} of endpoint "
                f"{other.endpoint_id[:12]}: their IDs share the first 11 characters"
            )
    for name in (host_ifname, container_ifname):
        link = facts.links.get(name)
        if link is None or _marks_endpoint(link, request.network_id, endpoint_id, state):
            continue
        owner = parse_alias(link.ifalias)
        if owner is None:
            raise Conflict(f"interface {name!r} already exists and was not created by vxlan-evt")
        raise Conflict(
            f"interface {name!r} belongs to vxlan-evt endpoint "
            f"{(owner.endpoint_id or 'none')[:12]} of network {owner.network_id[:12]}, "
            f"not to endpoint {endpoint_id[:12]}"
        )
    record = EndpointRecord(
        network_id=request.network_id,
        endpoint_id=request.endpoint_id,
        host_ifname=host_ifname,
        container_ifname=container_ifname,
        mac=request.mac or endpoint_mac(request),
        address=request.address,
        address6=request.address6,
    )
    return record, plan_endpoint_links(record, network, facts, state.instance)


def _marks_endpoint(link: LinkInfo, network_id: str, endpoint_id: str, state: DriverState) -> bool:
    owner = parse_alias(link.ifalias)
    return (
        owner is not None
        and (owner.network_id, owner.endpoint_id) == (network_id, endpoint_id)
        and owner.instance in (None, state.instance)
    )


def plan_endpoint_links(
    record: EndpointRecord, network: NetworkRecord, facts: HostFacts, instance: str
) -> list[Action]:
    if record.host_ifname in facts.links:
        actions = _reattach(record.host_ifname, network.bridge_name, facts)
        if not facts.links[record.host_ifname].up:
            actions.append(SetUp(record.host_ifname))
        return actions
    return [
        CreateVeth(
            host_ifname=record.host_ifname,
            container_ifname=record.container_ifname,
            mtu=network.bridge_mtu,
            mac=record.mac,
            master=network.bridge_name,
            alias=endpoint_alias(record.network_id, record.endpoint_id, instance),
        ),
        SetUp(record.host_ifname),
    ]


def plan_delete_endpoint(
    facts: HostFacts, network_id: str, endpoint_id: str, instance: str
) -> list[Action]:
    return _delete_order(
        (link, owner)
        for link, owner in _owned_links(facts, network_id, instance)
        if owner.endpoint_id == endpoint_id
    )


def join_response(network: NetworkRecord, endpoint: EndpointRecord) -> dict[str, object]:
    """Join's answer: the interface to move, and the gateway as the default route.

    The gateway is returned in both scopes (in global scope a router on the
    segment owns it); returning one keeps Docker from adding docker_gwbridge.
    """
    response: dict[str, object] = {
        "InterfaceName": {"SrcName": endpoint.container_ifname, "DstPrefix": "eth"},
        "StaticRoutes": [],
        "DisableGatewayService": True,
    }
    for cidr in network.gateways:
        gateway = ipaddress.ip_interface(cidr).ip
        response["Gateway" if gateway.version == 4 else "GatewayIPv6"] = str(gateway)
    return response


@dataclass(frozen=True, slots=True)
class NetworkRepair:
    """One network's start-up repair: the actions that bring it and its endpoints back,
    or why that cannot be done now (the network is then served degraded, and retried)."""

    network_id: str
    actions: tuple[Action, ...] = ()
    problem: str | None = None
    skipped: tuple[str, ...] = ()  # endpoints left alone, and why


@dataclass(frozen=True, slots=True)
class ReconcilePlan:
    """Start-up repair, network by network: one that cannot be repaired stops no other."""

    orphans: tuple[Action, ...]
    networks: tuple[NetworkRepair, ...]
    # Endpoint records whose network the state does not know (a damaged or hand-edited
    # state): nothing is built for them, and their links, if any, are orphans.
    stray_endpoints: tuple[str, ...] = ()


def plan_network_repair(
    state: DriverState, record: NetworkRecord, options: NetworkOptions | UserError, facts: HostFacts
) -> NetworkRepair:
    """Recreate what is missing and re-attach what came loose, for one network and its
    endpoints; never on a link that is not this network's (a foreign `br-42` is a problem
    to report, not a bridge to take over)."""
    network_id = record.network_id
    try:
        if isinstance(options, UserError):
            raise options
        _check_name_free("bridgeName", record.bridge_name, network_id, facts)
        _check_name_free("vxlanName", record.vxlan_name, network_id, facts)
        vtep_dev = options.vxlan.vtep_dev
        if record.vxlan_name not in facts.links and vtep_dev not in (None, *facts.links):
            raise InvalidOption(f"VtepDev: there is no device {vtep_dev!r} on this host (yet)")
        actions = plan_network_links(record, options, facts, state.instance)
    except UserError as exc:
        return NetworkRepair(network_id, problem=str(exc))
    skipped = []
    for endpoint in state.endpoints_of(network_id):
        link = facts.links.get(endpoint.host_ifname)
        if link is None and endpoint.joined:
            continue  # its container went away while we were down; Docker will delete it
        if link is not None and not _marks_endpoint(link, network_id, endpoint.endpoint_id, state):
            skipped.append(
                f"endpoint {endpoint.endpoint_id[:12]}: interface {endpoint.host_ifname!r} "
                "is not this endpoint's (its ifalias is not our mark); left alone"
            )
            continue
        actions.extend(plan_endpoint_links(endpoint, record, facts, state.instance))
    return NetworkRepair(network_id, tuple(actions), skipped=tuple(skipped))


def plan_reconcile(
    state: DriverState,
    options_by_network: Mapping[str, NetworkOptions | UserError],
    facts: HostFacts,
) -> ReconcilePlan:
    """On start: remove our orphans, then repair each network on its own."""
    return ReconcilePlan(
        orphans=tuple(plan_orphans(state, facts)),
        networks=tuple(
            plan_network_repair(state, record, options_by_network[network_id], facts)
            for network_id, record in state.networks.items()
        ),
        stray_endpoints=tuple(
            endpoint_id
            for endpoint_id, endpoint in state.endpoints.items()
            if endpoint.network_id not in state.networks
        ),
    )
