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
from vxlan_evt.model.errors import Conflict, SystemFailure, UserError
from vxlan_evt.model.links import HostFacts
from vxlan_evt.model.modes import Scope
from vxlan_evt.model.network import NetworkOptions
from vxlan_evt.model.plan import Action
from vxlan_evt.model.state import DriverState, NetworkRecord, new_instance

log = logging.getLogger(__name__)

REPAIR_INTERVAL = 30.0  # seconds between retries of a degraded network without link events
REPAIR_DEBOUNCE = 0.5  # a burst of link events (a device coming up) is one retry

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
        # Networks in the state that could not be rebuilt (by ID: why); served, retried.
        self.degraded: dict[str, str] = {}
        self._links_changed = trio.Event()
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
        """Save, then put in force. `on_change` only tells others (republish, resync): its
        failure is logged, never undoes a change the kernel and the disk already hold."""
        await trio.to_thread.run_sync(self.store.save, state)
        self.state = state
        try:
            self.on_change()
        except Exception:
            log.exception("after a committed change: telling the peer backends failed")

    # --- start-up and repair -------------------------------------------------

    def _options_by_network(self) -> dict[str, NetworkOptions | UserError]:
        """Each network's options re-parsed; one that no longer parses is that network's
        problem, not everyone's."""
        parsed: dict[str, NetworkOptions | UserError] = {}
        for network_id, record in self.state.networks.items():
            try:
                parsed[network_id] = self.network_options(record.generic_options)
            except UserError as exc:
                parsed[network_id] = exc
        return parsed

    async def load_and_reconcile(self) -> None:
        """Rebuild the datapath from the state file, network by network; remove links we
        leaked. A network that cannot be rebuilt now is served degraded and retried."""
        self.state = await trio.to_thread.run_sync(self.store.load)
        async with self._lock:
            if not self.state.instance:
                # The first start on this state dir names the instance before it makes
                # any link, so that every link it makes carries the name.
                with trio.CancelScope(shield=True):
                    await self.commit(replace(self.state, instance=new_instance()))
                log.info("new instance=%s state_dir=%s", self.state.instance, self.store.state_dir)
            facts = await self.host_facts()
            plan = driver.plan_reconcile(self.state, self._options_by_network(), facts)
            unproven = driver.unproven_marks(self.state, facts)
            if unproven:
                log.warning(
                    "left alone: %d links marked by vxlan-evt that this instance (%s, state "
                    "dir %s) cannot prove are its own (another daemon's, or from a lost state "
                    "dir): %s",
                    len(unproven),
                    self.state.instance,
                    self.store.state_dir,
                    " ".join(unproven[:8]) + (" ..." if len(unproven) > 8 else ""),
                )
            if self.store.recovered is not None and plan.orphans:
                # The backup may be one change behind: a link it does not name may be a
                # live container's. Nothing is deleted on this start.
                log.warning(
                    "state recovered from its backup: not removing %d links it does not "
                    "name (they may be live); remove them by hand if they are leaks: %s",
                    len(plan.orphans),
                    " ".join(getattr(a, "ifname", "") for a in plan.orphans),
                )
                applied = 0
            else:
                applied = await self._apply_orphans(plan.orphans)
            for endpoint_id in plan.stray_endpoints:
                log.warning(
                    "endpoint %s in the state names a network the state does not know; ignored",
                    endpoint_id[:12],
                )
            for repair in plan.networks:
                applied += await self._apply_repair(repair)
        log.info(
            "reconciled networks=%d degraded=%d endpoints=%d actions=%d",
            len(self.state.networks),
            len(self.degraded),
            len(self.state.endpoints),
            applied,
        )

    async def _apply_orphans(self, actions: Sequence[Action]) -> int:
        try:
            with trio.CancelScope(shield=True):
                await self.apply(actions)
        except SystemFailure as exc:
            log.warning("could not remove every leaked link: %s", exc)
        return len(actions)

    async def _apply_repair(self, repair: driver.NetworkRepair) -> int:
        """Apply one network's repair; record it degraded, or healthy again. Under the lock."""
        network_id = repair.network_id
        for reason in repair.skipped:
            log.warning("network %s: %s", network_id[:12], reason)
        problem = repair.problem
        if problem is None:
            try:
                with trio.CancelScope(shield=True):
                    await self.apply(repair.actions)
            except SystemFailure as exc:
                problem = str(exc)
        record = self.state.networks[network_id]
        if problem is not None:
            if self.degraded.get(network_id) != problem:
                log.warning(
                    "network degraded network=%s vni=%d problem=%s (retried when links change)",
                    network_id[:12],
                    record.vni,
                    problem,
                )
            self.degraded[network_id] = problem
            return 0
        if self.degraded.pop(network_id, None) is not None:
            log.info("network repaired network=%s vni=%d", network_id[:12], record.vni)
        return len(repair.actions)

    async def repair_degraded(self) -> None:
        """One more try at every degraded network (each on its own)."""
        async with self._lock:
            if not self.degraded:
                return
            facts = await self.host_facts()
            options = self._options_by_network()
            for network_id in list(self.degraded):
                record = self.state.networks.get(network_id)
                if record is None:
                    self.degraded.pop(network_id)
                    continue
                repair = driver.plan_network_repair(self.state, record, options[network_id], facts)
                await self._apply_repair(repair)
                facts = await self.host_facts()

    def links_changed(self) -> None:
        """A link appeared, went or changed: a degraded network may be repairable now."""
        if self.degraded:
            self._links_changed.set()

    async def run_repairs(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Retry degraded networks when links change (a VtepDev that comes up late at boot),
        and every `REPAIR_INTERVAL` seconds anyway; at most once per `REPAIR_DEBOUNCE`."""
        task_status.started()
        while True:
            with trio.move_on_after(REPAIR_INTERVAL):
                await self._links_changed.wait()
            await trio.sleep(REPAIR_DEBOUNCE)  # a burst of link events is one retry
            self._links_changed = trio.Event()
            await self.repair_degraded()

    async def _require_healthy(self, network_id: str) -> None:
        """Docker calls on a degraded network first try to repair it, then fail clearly."""
        if network_id not in self.degraded:
            return
        await self.repair_degraded()
        problem = self.degraded.get(network_id)
        if problem is not None:
            raise SystemFailure(f"network {network_id[:12]} is degraded on this host: {problem}")

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
            # Shielded: a call cancelled half-way (Docker hung up, shutdown) must still end
            # in kernel and state agreeing, and a rollback in a cancelled scope does nothing.
            with trio.CancelScope(shield=True):
                await self.apply(actions)
                try:
                    await self.commit(self.state.with_network(record))
                except BaseException:
                    await self.apply(
                        driver.plan_delete_network(
                            await self.host_facts(), record.network_id, self.state.instance
                        )
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
            with trio.CancelScope(shield=True):
                if request.network_id in self.state.networks:
                    await self.commit(self.state.without_network(request.network_id))
                self.degraded.pop(request.network_id, None)
                await self.apply(
                    driver.plan_delete_network(
                        await self.host_facts(), request.network_id, self.state.instance
                    )
                )
        log.info("network deleted network=%s", request.network_id[:12])
        return {}

    async def create_endpoint(self, body: Mapping[str, Any]) -> dict[str, Any]:
        request = CreateEndpointRequest.from_json(body)
        await self._require_healthy(request.network_id)
        async with self._lock:
            record, actions = driver.plan_create_endpoint(
                self.state, request, await self.host_facts()
            )
            with trio.CancelScope(shield=True):  # as in create_network
                await self.apply(actions)
                try:
                    await self.commit(self.state.with_endpoint(record))
                except BaseException:
                    await self.apply(
                        driver.plan_delete_endpoint(
                            await self.host_facts(),
                            record.network_id,
                            record.endpoint_id,
                            self.state.instance,
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
            with trio.CancelScope(shield=True):
                if request.endpoint_id in self.state.endpoints:
                    await self.commit(self.state.without_endpoint(request.endpoint_id))
                await self.apply(
                    driver.plan_delete_endpoint(
                        await self.host_facts(),
                        request.network_id,
                        request.endpoint_id,
                        self.state.instance,
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
                with trio.CancelScope(shield=True):
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
                with trio.CancelScope(shield=True):
                    await self.commit(self.state.with_endpoint(replace(endpoint, joined=False)))
        log.info("endpoint left endpoint=%s", request.endpoint_id[:12])
        return {}
