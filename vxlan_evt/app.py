"""The daemon: every long-lived task in one trio nursery.

Start order matters and is expressed with `nursery.start()`: the netlink
worker must own its socket before the state is reconciled, and the state must
be reconciled before Docker can reach the plugin socket. Shutdown is an event:
the API servers stop accepting, finish in-flight calls within the grace
period, and only then is everything else cancelled.
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

from vxlan_evt.api.plugin import InFlight, create_plugin_app
from vxlan_evt.config import DaemonConfig
from vxlan_evt.netlink.links import NetlinkKernel
from vxlan_evt.netlink.worker import NetlinkWorker
from vxlan_evt.service import DriverService
from vxlan_evt.state import StateStore

log = logging.getLogger(__name__)


def hypercorn_config(socket_path: Path, grace: float) -> HypercornConfig:
    """Bind a root-only unix socket; hypercorn logs through our logging."""
    config = HypercornConfig()
    config.bind = [f"unix:{socket_path}"]
    config.umask = 0o177  # socket mode 0600
    config.graceful_timeout = grace
    config.accesslog = None
    config.errorlog = logging.getLogger("vxlan_evt.http")
    return config


async def wait_for_shutdown_signal(shutdown: trio.Event) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            log.info("shutting down on %s", signal.Signals(signum).name)
            shutdown.set()
            return


async def run_daemon(
    config: DaemonConfig,
    *,
    shutdown: trio.Event | None = None,
    task_status: trio.TaskStatus[DriverService] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Run until `shutdown` is set (by SIGTERM/SIGINT unless the caller passes its own)."""
    shutdown = shutdown or trio.Event()
    worker = NetlinkWorker()
    service = DriverService(config, NetlinkKernel(worker), StateStore(config.state_dir))
    config.plugin_socket.parent.mkdir(parents=True, exist_ok=True)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(wait_for_shutdown_signal, shutdown)
            await nursery.start(worker.run)
            await service.load_and_reconcile()
            in_flight = InFlight()
            async with trio.open_nursery() as servers:
                await servers.start(
                    partial(
                        hypercorn_serve,
                        create_plugin_app(service, in_flight),
                        hypercorn_config(config.plugin_socket, config.shutdown_grace),
                        shutdown_trigger=shutdown.wait,
                    )
                )
                os.chmod(config.plugin_socket, 0o600)
                log.info(
                    "serving driver=%s socket=%s scope=%s state_dir=%s",
                    config.driver_name,
                    config.plugin_socket,
                    config.scope,
                    config.state_dir,
                )
                task_status.started(service)
                await shutdown.wait()  # hypercorn stops accepting on the same event
                with trio.move_on_after(config.shutdown_grace):
                    await in_flight.wait_idle()
                servers.cancel_scope.cancel()  # idle keep-alive connections
            nursery.cancel_scope.cancel()
    finally:
        config.plugin_socket.unlink(missing_ok=True)
    log.info("stopped")
