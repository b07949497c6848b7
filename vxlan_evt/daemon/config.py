"""Daemon settings: the seed's flags plus ours, as one frozen value."""

from __future__ import annotations

import socket
from dataclasses import dataclass
from pathlib import Path

from vxlan_evt.model.defaults import DEFAULT_ETCD_PREFIX, DEFAULT_NETLINK_RCVBUF
from vxlan_evt.model.modes import ResolveMode, Scope

DEFAULT_PLUGIN_SOCKET = Path("/run/docker/plugins/vxlan.sock")
DEFAULT_STATE_DIR = Path("/var/lib/vxlan-evt")
DEFAULT_API_SOCKET = Path("/run/vxlan-evt/api.sock")

# The seed took Go-style single-dash long flags; old command lines keep working.
LEGACY_FLAGS = {"-scope": "--scope", "-vtepdev": "--vtepdev", "-debug": "--debug"}


@dataclass(frozen=True, slots=True)
class DaemonConfig:
    scope: Scope = "local"
    vtepdev: str | None = None
    debug: bool = False
    log_format: str = "text"
    plugin_socket: Path = DEFAULT_PLUGIN_SOCKET
    state_dir: Path = DEFAULT_STATE_DIR
    shutdown_grace: float = 10.0
    api_socket: Path = DEFAULT_API_SOCKET
    api_listen: str | None = None  # "127.0.0.1:9310": also serve the observe API on TCP
    peers_file: Path | None = None
    populate: bool = True  # answer misses from the peer table
    log_events: bool = True
    netlink_rcvbuf: int = DEFAULT_NETLINK_RCVBUF
    arp_answer: bool = True  # after an L3 miss is programmed, tell the containers (no 1 s retry)
    resolve: ResolveMode = "preprogram"  # default for networks without a Resolve option
    idle_timeout: float = 300.0  # on-demand entries unused this long are removed
    etcd_endpoints: tuple[str, ...] = ()  # empty: the embedded peer backend only
    etcd_prefix: str = DEFAULT_ETCD_PREFIX
    etcd_tls: tuple[str, str, str] | None = None  # client cert, client key, CA
    etcd_username: str | None = None
    etcd_password: str | None = None
    etcd_lease_ttl: int = 10
    hostname: str = ""  # how this host names itself in etcd (default: the system hostname)
    advertise_address: str | None = None  # this host's VTEP address when SrcAddr is not set

    @property
    def host_name(self) -> str:
        """How this host names itself to other hosts: --hostname, else the system's."""
        return self.hostname or socket.gethostname()

    @property
    def driver_name(self) -> str:
        """Docker names a legacy plugin after its socket file's stem."""
        return self.plugin_socket.stem


def normalise_legacy_flags(argv: list[str]) -> list[str]:
    """Rewrite `-scope global` / `-scope=global` to the double-dash spelling."""
    out = []
    for arg in argv:
        flag, sep, value = arg.partition("=")
        if flag in LEGACY_FLAGS:
            arg = LEGACY_FLAGS[flag] + sep + value
        out.append(arg)
    return out
