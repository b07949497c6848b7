"""The etcd backend's table refresh, without etcd: what it tells the daemon, and when."""

from __future__ import annotations

import ipaddress
from typing import cast

import pytest
import trio

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


class BrokenEtcd:
    """Answers every call with an exception no handler foresaw (a codec bug, say)."""

    def __init__(self) -> None:
        self.attempts = 0

    async def lease_grant(self, ttl: int) -> object:
        self.attempts += 1
        raise KeyError("ID")


async def test_an_unexpected_exception_backs_off_and_retries_keeping_the_table(
    autojump_clock: object, caplog: pytest.LogCaptureFixture
) -> None:
    broken = BrokenEtcd()
    peers = EtcdPeers(
        cast(EtcdClient, broken), prefix="/p/", host="a", lease_ttl=10, local=lambda: [OURS]
    )
    peers.local_changed()
    async with trio.open_nursery() as nursery:
        await nursery.start(peers.run)  # the daemon starts even so
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    assert broken.attempts >= 4  # 0.5 + 1 + 2 + 4 + 8 s of backoff: still trying
    assert broken.attempts <= 8  # ... and not in a hot loop
    assert not peers.connected and peers.table.by_ip(42, OURS.ip) == OURS
    assert "etcd peer sync failed unexpectedly" in caplog.text and "KeyError" in caplog.text
