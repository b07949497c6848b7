"""The daemon: every long-lived task in one trio nursery.

Start order matters and is expressed with `nursery.start()`: the netlink
worker must own its socket before the state is reconciled; the listener must
be subscribed before anything is served; the state must be reconciled before
Docker can reach the plugin socket. Shutdown is an event: the API servers stop
accepting, calls in flight finish within the grace period, and only then is
everything else cancelled.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
from collections.abc import Callable, Collection, Mapping
from functools import partial
from ipaddress import ip_address
from pathlib import Path
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from vxlan_evt.daemon.config import DaemonConfig
from vxlan_evt.disk.lock import StateDirLock
from vxlan_evt.driver.api import InFlight, create_plugin_app
from vxlan_evt.driver.options import parse_network_options
from vxlan_evt.driver.plan import network_of_link
from vxlan_evt.driver.service import CurrentState, DriverService, NetworkGuard
from vxlan_evt.driver.store import StateStore
from vxlan_evt.etcd.client import EtcdClient
from vxlan_evt.ipam.service import IpamService
from vxlan_evt.ipam.store import EtcdIpamStore, IpamStore, LocalIpamStore
from vxlan_evt.kernel.decode import NetlinkDecoder
from vxlan_evt.kernel.links import NetlinkKernel
from vxlan_evt.kernel.listener import NetlinkListener
from vxlan_evt.kernel.packets import PacketSender
from vxlan_evt.kernel.worker import NetlinkWorker
from vxlan_evt.model.addresses import IPAddress
from vxlan_evt.model.defaults import MAX_OBSERVE_TCP_REQUESTS
from vxlan_evt.model.errors import Conflict
from vxlan_evt.model.events import LinkEvent
from vxlan_evt.model.links import Address, LinkInfo
from vxlan_evt.model.metrics import Metrics
from vxlan_evt.model.state import NetworkRecord
from vxlan_evt.observe.api import create_observe_app
from vxlan_evt.observe.limits import TcpRequestCap
from vxlan_evt.observe.observer import DaemonObserver
from vxlan_evt.peers.etcd import EtcdPeers
from vxlan_evt.peers.keys import encode_network, segment_settings
from vxlan_evt.peers.local import local_endpoints, vtep_of
from vxlan_evt.peers.static import StaticPeers
from vxlan_evt.peers.table import PeerTable
from vxlan_evt.resolve.answerer import ArpAnswerer
from vxlan_evt.resolve.arp import endpoint_ports
from vxlan_evt.resolve.bus import EventBus
from vxlan_evt.resolve.engine import AnsweredHook, EngineSettings, EventEngine
from vxlan_evt.resolve.ondemand import OnDemand, device_mode, network_mode
from vxlan_evt.resolve.peersync import PeerSync, PeerSyncRequest

log = logging.getLogger(__name__)


def hypercorn_config(binds: list[str], grace: float, name: str) -> HypercornConfig:
    """Root-only unix sockets (umask 0177); hypercorn logs through our logging."""
    config = HypercornConfig()
    config.bind = binds
    config.umask = 0o177
    config.graceful_timeout = grace
    config.accesslog = None
    config.errorlog = logging.getLogger(f"vxlan_evt.http.{name}")
    return config


def open_packet_sender(config: DaemonConfig) -> PacketSender | None:
    """The socket for ARP answers; None when they are off or the socket is refused."""
    if not config.arp_answer:
        return None
    try:
        return PacketSender()
    except OSError as exc:  # e.g. no CAP_NET_RAW: misses still get answered, 1 s slower
        log.warning("ARP answers are off: cannot open a packet socket: %s", exc)
        return None


def miss_hooks(
    links: Mapping[int, LinkInfo],
    service: DriverService,
    sender: PacketSender | None,
    ondemand: OnDemand,
    metrics: Metrics,
) -> tuple[AnsweredHook, ...]:
    """After a miss is programmed: answer the waiting container first, then track the entry.

    `links` is the listener's live link table."""
    hooks: list[AnsweredHook] = []
    if sender is not None:

        def ports(ifindex: int) -> list[str] | None:
            return endpoint_ports(ifindex, links, service.state)

        hooks.append(ArpAnswerer(sender, lambda: links, ports, metrics))
    hooks.append(ondemand)
    return tuple(hooks)


async def wait_for_shutdown_signal(shutdown: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("shutting down on %s", signal.Signals(signum).name)
            shutdown.set()
            return


def claim_socket_path(path: Path) -> None:
    """Make the socket's directory; refuse a path another process still listens on
    (hypercorn would silently replace its socket). A stale file is left to hypercorn."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
        try:
            probe.connect(str(path))
        except OSError:
            return  # nothing there, or a dead socket file
    raise Conflict(f"something already listens on {path} (another vxlan-evt?); stop it first")


def segment_of(record: NetworkRecord, vtepdev: str | None) -> dict[str, str]:
    """The settings every host of a VNI must agree on, as the service parses them."""
    options = parse_network_options(record.generic_options, vtepdev_override=vtepdev)
    return segment_settings(options.vxlan)


def open_etcd_peers(
    config: DaemonConfig,
    driver_state: CurrentState,
    links: Mapping[int, LinkInfo],
    addresses: Mapping[int, Collection[Address]],
    *,
    on_change: Callable[[], None],
) -> EtcdPeers | None:
    """The etcd backend, publishing this host's endpoints (and the addresses an operator
    put on our bridges: `links` and `addresses` are the listener's live tables).

    It reads the driver's state through `driver_state`, as the service reports its
    changes to the backend and so is built after it."""
    if not config.etcd_endpoints:
        return None
    client = EtcdClient(
        config.etcd_endpoints,
        tls=config.etcd_tls,
        username=config.etcd_username,
        password=config.etcd_password,
    )
    return EtcdPeers(
        client,
        prefix=config.etcd_prefix,
        host=config.host_name,
        lease_ttl=config.etcd_lease_ttl,
        local=lambda: local_endpoints(
            driver_state.value,
            host=config.host_name,
            advertise_address=config.advertise_address,
            links=links,
            addresses=addresses,
        ),
        local_networks=lambda: {
            record.vni: encode_network(segment_of(record, config.vtepdev), record.pools)
            for record in driver_state.value.networks.values()
        },
        on_change=on_change,
    )


def etcd_network_guard(etcd: EtcdPeers, vtepdev: str | None) -> NetworkGuard:
    """Refuse a network whose settings clash with what other hosts published for its VNI."""

    async def guard(record: NetworkRecord) -> str | None:
        return await etcd.check_network(record.vni, segment_of(record, vtepdev), record.pools)

    return guard


def local_change_callback(
    etcd: EtcdPeers | None, sync_wanted: PeerSyncRequest
) -> Callable[[], None]:
    """When this host's endpoints change: republish them (with etcd), and resync."""
    if etcd is None:
        return sync_wanted.set

    def local_changed() -> None:
        etcd.local_changed()
        sync_wanted.set()

    return local_changed


def address_change_callback(
    etcd: EtcdPeers | None, local_changed: Callable[[], None]
) -> Callable[[], None]:
    """An address on one of our links matters only to what etcd publishes of this host."""
    return local_changed if etcd is not None else lambda: None


async def report_link_changes(bus: EventBus[Any], links_changed: Callable[[], None]) -> None:
    """Tell the driver of every link event (a degraded network may be repairable now)."""
    async with bus.subscribe(lambda event: isinstance(event, LinkEvent)) as subscription:
        async for _ in subscription:
            links_changed()


async def run_daemon(
    config: DaemonConfig,
    *,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[DriverService] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until `shutdown` is set (by SIGTERM/SIGINT unless the caller passes its own),
    holding the state dir's lock all along: one daemon per state dir."""
    with StateDirLock(config.state_dir):
        await serve_locked(config, shutdown=shutdown, task_status=task_status)


async def serve_locked(
    config: DaemonConfig,
    *,
    shutdown: trio.Event | None,
    task_status: trio.TaskStatus[DriverService],
) -> None:
    """The daemon itself, once the state dir is ours.

    Every object is built here, after what it needs, and given its callbacks then.
    PeerSync reads the peer table, built from the backends that ask it for a sync: they
    ask through `sync_wanted`, which exists first. The service reports its changes to
    the etcd backend, which reads the service's state through `driver_state`.
    """
    shutdown = shutdown or trio.Event()
    sync_wanted = PeerSyncRequest()
    # A bad peers file stops start-up, clearly.
    static_peers = StaticPeers(config.peers_file, on_change=sync_wanted.set)
    worker = NetlinkWorker()
    metrics = Metrics()
    # The listener's link and address tables, live views shared before it runs.
    decoder = NetlinkDecoder()
    links, addresses = decoder.links, decoder.addresses
    driver_state = CurrentState()
    etcd = open_etcd_peers(config, driver_state, links, addresses, on_change=sync_wanted.set)
    local_changed = local_change_callback(etcd, sync_wanted)
    service = DriverService(
        NetlinkKernel(worker),
        StateStore(config.state_dir),
        scope=config.scope,
        vtepdev=config.vtepdev,
        state=driver_state,
        on_change=local_changed,
        network_guard=etcd_network_guard(etcd, config.vtepdev) if etcd is not None else None,
    )
    ipam_store: IpamStore = (
        EtcdIpamStore(etcd.client, config.etcd_prefix)
        if etcd is not None
        else LocalIpamStore(config.state_dir)
    )
    ipam = IpamService(ipam_store, config.host_name)

    def peer_table() -> PeerTable:
        if etcd is None:
            return static_peers.table
        return static_peers.table.merged(etcd.table)

    metrics.track_peers(lambda: len(peer_table().endpoints))
    if etcd is not None:
        metrics.track_etcd(lambda: etcd.connected)

    peer_sync = PeerSync(
        service,
        worker,
        metrics,
        peer_table,
        state_dir=config.state_dir,
        advertise_address=config.advertise_address,
        preprogram=lambda record: network_mode(record, config.resolve) == "preprogram",
        links=lambda: links,
        requests=sync_wanted,
    )
    ondemand = OnDemand(
        worker,
        metrics,
        lambda ifindex: device_mode(ifindex, links, service.state.networks, config.resolve),
        idle_timeout=config.idle_timeout,
        path=config.state_dir / "ondemand.json",
    )

    def local_vteps(ifindex: int) -> tuple[IPAddress, ...]:
        record = network_of_link(ifindex, links, service.state.networks)
        vtep = vtep_of(record, config.advertise_address) if record is not None else None
        return (ip_address(vtep),) if vtep else ()

    sockets = [config.plugin_socket, config.api_socket]
    for path in sockets:
        claim_socket_path(path)
    # From here on every resource is released in the `finally` below; what is built
    # between here and the `try` only constructs objects (no I/O that can fail).
    sender = open_packet_sender(config)
    engine = EventEngine(
        EventBus(),
        worker,
        metrics,
        peer_table,
        EngineSettings(log_events=config.log_events, populate=config.populate),
        links=links,
        addresses=addresses,
        local_vteps=local_vteps,
        on_our_address_change=address_change_callback(etcd, local_changed),
        hooks=miss_hooks(links, service, sender, ondemand, metrics),
    )
    listener = NetlinkListener(engine.on_event, rcvbuf=config.netlink_rcvbuf, decoder=decoder)
    observer = DaemonObserver(
        service,
        worker,
        engine,
        metrics,
        peer_table,
        ondemand=ondemand,
        default_resolve=config.resolve,
    )
    in_flight = InFlight()
    # One socket, one driver name: `--ipam-driver vxlan` reaches the same daemon.
    plugin_app = create_plugin_app({**service.handlers, **ipam.handlers}, in_flight, metrics)
    observe_app = create_observe_app(observer)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_shutdown_signal, shutdown)
            nursery.start_soon(static_peers.watch)
            await nursery.start(worker.run)
            await nursery.start(engine.run_resolver)
            await nursery.start(listener.run)
            await service.load_and_reconcile()
            await nursery.start(service.run_repairs)
            nursery.start_soon(report_link_changes, engine.bus, service.links_changed)
            await nursery.start(peer_sync.run)
            await nursery.start(ondemand.run)
            if etcd is not None:
                await nursery.start(etcd.run)
            async with trio.open_nursery() as servers:
                await servers.start(
                    partial(
                        hypercorn_serve,
                        plugin_app,
                        hypercorn_config(
                            [f"unix:{config.plugin_socket}"], config.shutdown_grace, "plugin"
                        ),
                        shutdown_trigger=shutdown.wait,
                    )
                )
                api_binds = [f"unix:{config.api_socket}"]
                if config.api_listen:
                    api_binds.append(config.api_listen)
                await servers.start(
                    partial(
                        hypercorn_serve,
                        TcpRequestCap(observe_app, MAX_OBSERVE_TCP_REQUESTS),
                        hypercorn_config(api_binds, config.shutdown_grace, "observe"),
                        shutdown_trigger=shutdown.wait,
                    )
                )
                for path in sockets:
                    os.chmod(path, 0o600)
                log.info(
                    "serving driver=%s socket=%s api=%s scope=%s state_dir=%s populate=%s peers=%d",
                    config.driver_name,
                    config.plugin_socket,
                    " ".join(api_binds),
                    config.scope,
                    config.state_dir,
                    config.populate,
                    len(peer_table().endpoints),
                )
                task_status.started(service)
                await shutdown.wait()  # hypercorn stops accepting on the same event
                with trio.move_on_after(config.shutdown_grace):
                    await in_flight.wait_idle()
                servers.cancel_scope.cancel()  # idle keep-alive connections, event streams
            nursery.cancel_scope.cancel()
    finally:
        for path in sockets:
            path.unlink(missing_ok=True)
        if sender is not None:
            sender.close()
        if etcd is not None:
            with trio.CancelScope(shield=True):
                await etcd.client.aclose()
    log.info("stopped")
