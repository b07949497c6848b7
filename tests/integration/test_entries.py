"""FDB/neighbour writes land in the vxlan device's own tables (not the bridge's)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from ipaddress import ip_address

import pytest
from pyroute2 import NetNS
from pyroute2.netns import popns, pushns

from vxlan_evt.kernel.entries import EntryWriter
from vxlan_evt.model.addresses import ZERO_MAC
from vxlan_evt.model.entries import Entry, FdbEntry, NeighEntry
from vxlan_evt.testing.netns import Netns

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces and links"),
]


@pytest.fixture
def host() -> Iterator[Netns]:
    with Netns("entries") as netns:
        netns.ip("link", "add", "br0", "type", "bridge")
        netns.ip("link", "add", "vx-5", "type", "vxlan", "id", "5", "dstport", "4789")
        netns.ip("link", "set", "vx-5", "master", "br0", "up")
        yield netns


@contextmanager
def writer_in(netns: Netns, **options: int) -> Iterator[EntryWriter]:
    """An EntryWriter whose socket lives in `netns` (a socket keeps the namespace it was born in)."""
    pushns(netns.name)
    try:
        writer = EntryWriter(**options)
    finally:
        popns()
    with writer:
        yield writer


def test_write_and_delete_entries(host: Netns) -> None:
    ipr = NetNS(host.name)
    try:
        index = ipr.link_lookup(ifname="vx-5")[0]
    finally:
        ipr.close()
    with writer_in(host, batch=3) as writer:  # several batches; a failure mid-batch
        mac = "02:42:0a:05:00:09"
        entries: list[Entry] = [
            NeighEntry(index, ip_address("10.5.0.9"), mac),
            NeighEntry(index, ip_address("fd05::9"), mac),
            FdbEntry(index, mac, ip_address("192.0.2.2")),
            FdbEntry(index, ZERO_MAC, ip_address("192.0.2.2")),
            FdbEntry(index, ZERO_MAC, ip_address("192.0.2.3")),
        ]
        assert writer.write(entries) == []
        assert writer.write(entries[:3]) == []  # replace is idempotent
        fdb = host.bridge("fdb", "show", "dev", "vx-5")
        assert f"{mac} dst 192.0.2.2 self permanent" in fdb
        assert "00:00:00:00:00:00 dst 192.0.2.2 self permanent" in fdb
        assert "00:00:00:00:00:00 dst 192.0.2.3 self permanent" in fdb
        assert f"{mac} master br0" not in fdb  # the pyroute2 trap: nothing in the bridge FDB
        neigh = host.ip("neigh", "show", "dev", "vx-5")
        assert f"10.5.0.9 lladdr {mac} PERMANENT" in neigh
        assert f"fd05::9 lladdr {mac} PERMANENT" in neigh

        bad = NeighEntry(9999, ip_address("10.5.0.1"), mac)
        good = NeighEntry(index, ip_address("10.5.0.7"), mac)
        failures = writer.write([entries[0], bad, good])
        assert [f[0] for f in failures] == [bad] and "No such device" in failures[0][1]
        assert "10.5.0.7" in host.ip("neigh", "show", "dev", "vx-5")  # the batch went on

        assert writer.delete([*entries[:2], entries[3], good]) == []
        assert writer.delete([entries[3]]) == []  # already gone is fine
        fdb = host.bridge("fdb", "show", "dev", "vx-5")
        assert "00:00:00:00:00:00 dst 192.0.2.2" not in fdb
        assert "00:00:00:00:00:00 dst 192.0.2.3 self permanent" in fdb
        assert "10.5.0.9" not in host.ip("neigh", "show", "dev", "vx-5")
