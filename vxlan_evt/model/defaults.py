"""Defaults that a daemon flag and the part it configures must agree on."""

from __future__ import annotations

# The event socket's receive buffer: room for a miss storm before ENOBUFS and a resync.
DEFAULT_NETLINK_RCVBUF = 8 * 1024 * 1024
# At most one resync (full link, address, neighbour and FDB dumps) per this many seconds.
MIN_RESYNC_INTERVAL = 1.0
# Where every key of vxlan-evt lives in etcd (endpoints, networks, IPAM).
DEFAULT_ETCD_PREFIX = "/vxlan-evt/v1/"
# The observe API: requests served at once to TCP clients (--api-listen; the root-only
# unix socket is never capped, so the CLI always gets through), and event followers.
MAX_OBSERVE_TCP_REQUESTS = 32
MAX_EVENT_FOLLOWERS = 64
