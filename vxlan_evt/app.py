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
from functools import partial
from pathlib import Path

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from vxlan_evt.api.observe import create_observe_app
from vxlan_evt.api.plugin import InFlight, create_plugin_app
from vxlan_evt.bus import EventBus
from vxlan_evt.config import DaemonConfig
from vxlan_evt.engine import EngineSettings, EventEngine
from vxlan_evt.metrics import Metrics
from vxlan_evt.netlink.links import NetlinkKernel
from vxlan_evt.netlink.listener import NetlinkListener
from vxlan_evt.netlink.worker import NetlinkWorker
from vxlan_evt.observer import DaemonObserver
from vxlan_evt.peers.static import StaticPeers
from vxlan_evt.peersync import PeerSync
from vxlan_evt.service import DriverService
from vxlan_evt.state import StateStore

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


async def wait_for_shutdown_signal(shutdown: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("shutting down on %s", signal.Signals(signum).name)
            shutdown.set()
            return


def _prepare_socket_path(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)


async def run_daemon(
    config: DaemonConfig,
    *,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[DriverService] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until `shutdown` is set (by SIGTERM/SIGINT unless the caller passes its own)."""
    shutdown = shutdown or trio.Event()
    peers = StaticPeers(config.peers_file)  # a bad peers file stops start-up, clearly
    worker = NetlinkWorker()
    metrics = Metrics()
    service = DriverService(config, NetlinkKernel(worker), StateStore(config.state_dir))
    engine = EventEngine(
        EventBus(),
        worker,
        metrics,
        lambda: peers.table,
        EngineSettings(log_events=config.log_events, populate=config.populate),
    )
    observer = DaemonObserver(service, worker, engine, metrics, lambda: peers.table)
    in_flight = InFlight()
    sockets = [config.plugin_socket, config.api_socket]
    for path in sockets:
        _prepare_socket_path(path)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_shutdown_signal, shutdown)
            nursery.start_soon(peers.watch)
            await nursery.start(worker.run)
            await nursery.start(engine.run_resolver)
            listener = NetlinkListener(engine.on_event, rcvbuf=config.netlink_rcvbuf)
            await nursery.start(listener.run)
            engine.use_links(listener.decoder.links)
            await service.load_and_reconcile()
            peer_sync = PeerSync(service, worker, metrics, lambda: peers.table)
            await nursery.start(peer_sync.run)
            service.on_change = peers.on_change = peer_sync.changed
            async with trio.open_nursery() as servers:
                await servers.start(
                    partial(
                        hypercorn_serve,
                        create_plugin_app(service, in_flight, metrics),
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
                        create_observe_app(observer),
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
                    len(peers.table.endpoints),
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
    log.info("stopped")
