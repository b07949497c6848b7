"""The driver's I/O shell: decode a Docker call, plan it purely, apply, persist.

Calls are serialised by one lock: Docker may send several at once, and each
plan must see the state and kernel left by the previous one. Handlers never
call the Docker API (Docker waits on us without a timeout).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, Protocol

import trio

from vxlan_evt.driver import plan as driver
from vxlan_evt.driver.options import parse_network_options
from vxlan_evt.driver.protocol import (
    CreateEndpointRequest,
    CreateNetworkRequest,
    EndpointRef,
    Handler,
    NetworkRef,
)
from vxlan_evt.driver.store import StateStore
from vxlan_evt.model.errors import Conflict
from vxlan_evt.model.links import HostFacts
from vxlan_evt.model.modes import Scope
from vxlan_evt.model.network import NetworkOptions
from vxlan_evt.model.plan import Action
from vxlan_evt.model.state import DriverState, NetworkRecord

log = logging.getLogger(__name__)

# Why a new network may not exist (its settings clash with other hosts'), or None.
NetworkGuard = Callable[[NetworkRecord], Awaitable[str | None]]


class Kernel(Protocol):
    """The service's only view of the kernel: snapshot links, apply a plan."""

    async def read_facts(self) -> HostFacts: ...

    async def apply(self, actions: Sequence[Action]) -> None: ...


class CurrentState:
    """The driver state in force: the service replaces it, anyone may read it any time.

    Shared by reference, so that what the service reports to (the etcd backend, which
    publishes this host's endpoints) can be built before the service and still read it.
    """

    def __init__(self, state: DriverState | None = None) -> None:
        self.value = state if state is not None else DriverState()


class DriverService:
    """Owns the driver state; every Docker method is an async method here.

    `on_change` is called after every committed change (e.g. resync the peer table);
    `network_guard`, when given, may refuse a new network before anything is created.
    """

    def __init__(
        self,
        kernel: Kernel,
        store: StateStore,
        *,
        scope: Scope = "local",
        vtepdev: str | None = None,
        state: CurrentState | None = None,
        on_change: Callable[[], None] = lambda: None,
        network_guard: NetworkGuard | None = None,
    ) -> None:
        self.scope = scope
        self.vtepdev = vtepdev  # the daemon's --vtepdev: every network's VtepDev unless set
        self.kernel = kernel
        self.store = store
        self.current = state if state is not None else CurrentState()
        self._lock = trio.Lock()
        self.on_change = on_change
        self.network_guard = network_guard
        # The network driver's methods; the plugin app serves them with the IPAM driver's.
        self.handlers: Mapping[str, Handler] = {
            "NetworkDriver.GetCapabilities": self.get_capabilities,
            "NetworkDriver.CreateNetwork": self.create_network,
            "NetworkDriver.DeleteNetwork": self.delete_network,
            "NetworkDriver.CreateEndpoint": self.create_endpoint,
            "NetworkDriver.DeleteEndpoint": self.delete_endpoint,
            "NetworkDriver.EndpointOperInfo": self.endpoint_oper_info,
            "NetworkDriver.Join": self.join,
            "NetworkDriver.Leave": self.leave,
            "NetworkDriver.DiscoverNew": self.no_op,
            "NetworkDriver.DiscoverDelete": self.no_op,
            "NetworkDriver.ProgramExternalConnectivity": self.no_op,
            "NetworkDriver.RevokeExternalConnectivity": self.no_op,
            "NetworkDriver.AllocateNetwork": self.allocate_network,
            "NetworkDriver.FreeNetwork": self.no_op,
        }

    @property
    def state(self) -> DriverState:
        return self.current.value

    @state.setter
    def state(self, state: DriverState) -> None:
        self.current.value = state

    # --- helpers ------------------------------------------------------------

    def network_options(self, generic: Mapping[str, object]) -> NetworkOptions:
        return parse_network_options(generic, vtepdev_override=self.vtepdev)

    async def host_facts(self) -> HostFacts:
        return await self.kernel.read_facts()

    async def apply(self, actions: Sequence[Action]) -> None:
        if actions:
            await self.kernel.apply(actions)

    async def commit(self, state: DriverState) -> None:
        await trio.to_thread.run_sync(self.store.save, state)
        self.state = state
        self.on_change()

    # --- start-up -----------------------------------------------------------

    async def load_and_reconcile(self) -> None:
        """Rebuild the datapath from the state file; remove links we leaked."""
        self.state = await trio.to_thread.run_sync(self.store.load)
        options = {
            network_id: self.network_options(record.generic_options)
            for network_id, record in self.state.networks.items()
        }
        async with self._lock:
            actions = driver.plan_reconcile(self.state, options, await self.host_facts())
            await self.apply(actions)
        log.info(
            "reconciled networks=%d endpoints=%d actions=%d",
            len(self.state.networks),
            len(self.state.endpoints),
            len(actions),
        )

    # --- Docker methods -----------------------------------------------------

    async def get_capabilities(self, _body: Mapping[str, Any]) -> dict[str, Any]:
        """Data scope is always local; `--scope` is the connectivity scope.

        Docker refuses every network of a driver whose data scope is global
        unless the node is a swarm manager ("This node is not a swarm
        manager"), and on swarm nodes legacy plugins must be local anyway. The
        segment itself spans hosts, which is what ConnectivityScope says.
        """
        return {"Scope": "local", "ConnectivityScope": self.scope}

    async def no_op(self, _body: Mapping[str, Any]) -> dict[str, Any]:
        return {}

    async def allocate_network(self, body: Mapping[str, Any]) -> dict[str, Any]:
        return {"Options": body.get("Options") or {}}

    async def create_network(self, body: Mapping[str, Any]) -> dict[str, Any]:
        request = CreateNetworkRequest.from_json(body)
        options = self.network_options(request.generic_options)
        async with self._lock:
            record, actions = driver.plan_create_network(
                self.state, request, options, await self.host_facts(), self.scope
            )
            if self.network_guard is not None:
                conflict = await self.network_guard(record)
                if conflict is not None:
                    raise Conflict(conflict)
            await self.apply(actions)
            try:
                await self.commit(self.state.with_network(record))
            except BaseException:
                await self.apply(
                    driver.plan_delete_network(await self.host_facts(), record.network_id)
                )
                raise
        log.info(
            "network created network=%s vni=%d vxlan=%s bridge=%s mtu=%d",
            record.network_id[:12],
            record.vni,
            record.vxlan_name,
            record.bridge_name,
            record.bridge_mtu,
        )
        return {}

    async def delete_network(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Idempotent; forgets first, so a crash mid-way leaves orphans the next start removes."""
        request = NetworkRef.from_json(body)
        async with self._lock:
            if request.network_id in self.state.networks:
                await self.commit(self.state.without_network(request.network_id))
            await self.apply(
                driver.plan_delete_network(await self.host_facts(), request.network_id)
            )
        log.info("network deleted network=%s", request.network_id[:12])
        return {}

    async def create_endpoint(self, body: Mapping[str, Any]) -> dict[str, Any]:
        request = CreateEndpointRequest.from_json(body)
        async with self._lock:
            record, actions = driver.plan_create_endpoint(
                self.state, request, await self.host_facts()
            )
            await self.apply(actions)
            try:
                await self.commit(self.state.with_endpoint(record))
            except BaseException:
                await self.apply(
                    driver.plan_delete_endpoint(
                        await self.host_facts(), record.network_id, record.endpoint_id
                    )
                )
                raise
        log.info(
            "endpoint created network=%s endpoint=%s ifname=%s mac=%s address=%s",
            record.network_id[:12],
            record.endpoint_id[:12],
            record.host_ifname,
            record.mac,
            record.address,
        )
        # Return only what Docker left empty.
        return {"Interface": {"MacAddress": record.mac}} if request.mac is None else {}

    async def delete_endpoint(self, body: Mapping[str, Any]) -> dict[str, Any]:
        request = EndpointRef.from_json(body)
        async with self._lock:
            if request.endpoint_id in self.state.endpoints:
                await self.commit(self.state.without_endpoint(request.endpoint_id))
            await self.apply(
                driver.plan_delete_endpoint(
                    await self.host_facts(), request.network_id, request.endpoint_id
                )
            )
        log.info("endpoint deleted endpoint=%s", request.endpoint_id[:12])
        return {}

    async def endpoint_oper_info(self, body: Mapping[str, Any]) -> dict[str, Any]:
        request = EndpointRef.from_json(body)
        endpoint = driver.require_endpoint(self.state, request.network_id, request.endpoint_id)
        return {
            "Value": {
                "ifname": endpoint.host_ifname,
                "mac": endpoint.mac,
                "address": endpoint.address or "",
            }
        }

    async def join(self, body: Mapping[str, Any]) -> dict[str, Any]:
        request = EndpointRef.from_json(body)
        async with self._lock:
            endpoint = driver.require_endpoint(self.state, request.network_id, request.endpoint_id)
            network = self.state.networks[request.network_id]
            if not endpoint.joined:
                await self.commit(self.state.with_endpoint(replace(endpoint, joined=True)))
        log.info(
            "endpoint joined network=%s endpoint=%s ifname=%s",
            request.network_id[:12],
            request.endpoint_id[:12],
            endpoint.container_ifname,
        )
        return driver.join_response(network, endpoint)

    async def leave(self, body: Mapping[str, Any]) -> dict[str, Any]:
        """Idempotent: Docker moves the container's end back; DeleteEndpoint removes it."""
        request = EndpointRef.from_json(body)
        async with self._lock:
            endpoint = self.state.endpoints.get(request.endpoint_id)
            if endpoint is not None and endpoint.joined:
                await self.commit(self.state.with_endpoint(replace(endpoint, joined=False)))
        log.info("endpoint left endpoint=%s", request.endpoint_id[:12])
        return {}
