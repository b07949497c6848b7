"""The etcd backend's table refresh, without etcd: what it tells the daemon, and when."""

from __future__ import annotations

import ipaddress
from typing import cast

from vxlan_evt.etcd.client import EtcdClient
from vxlan_evt.peers.etcd import EtcdPeers
from vxlan_evt.peers.table import PeerEndpoint

OURS = PeerEndpoint(
    vni=42,
    ip=ipaddress.ip_address("10.42.0.2"),
    mac="02:42:0a:2a:00:02",
    vtep=ipaddress.ip_address("192.0.2.1"),
    host="a",
)


def test_a_local_change_refreshes_the_table_and_reports_it() -> None:
    local: list[PeerEndpoint] = []
    changes: list[None] = []
    peers = EtcdPeers(
        cast(EtcdClient, object()),  # never reached: nothing here talks to etcd
        prefix="/vxlan-evt",
        host="a",
        lease_ttl=10,
        local=lambda: list(local),
        on_change=lambda: changes.append(None),
    )
    assert changes == [] and not peers.table.endpoints
    local.append(OURS)
    peers.local_changed()
    assert len(changes) == 1
    assert peers.table.by_ip(42, OURS.ip) == OURS
