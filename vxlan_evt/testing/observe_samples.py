"""Observe-API documents of one healthy host, for doctor, view and CLI tests to vary."""

from __future__ import annotations

import copy
from typing import Any

NET = "a1b2c3d4e5f6" + "7" * 52


EP = "e0e1e2e3e4e5" + "9" * 52


VX_MAC = "16:2b:00:aa:bb:01"


LOCAL_MAC = "02:42:c0:a8:2a:02"


PEERS = [
    {
        "vni": 42,
        "ip": "192.168.42.3",
        "mac": "02:42:c0:a8:2a:03",
        "vtep": "10.0.0.2",
        "source": "static",
        "host": "hostb",
        "container": "web",
    },
    {
        "vni": 42,
        "ip": "192.168.42.4",
        "mac": "02:42:c0:a8:2a:04",
        "vtep": "10.0.0.3",
        "source": "etcd",
        "host": "hostc",
        "container": "db",
    },
    # This host's own container, published too: it must not need entries here.
    {
        "vni": 42,
        "ip": "192.168.42.2",
        "mac": LOCAL_MAC,
        "vtep": "10.0.0.1",
        "source": "etcd",
        "host": "hosta",
        "container": "me",
    },
    # Another VNI: not this network's business.
    {
        "vni": 7,
        "ip": "10.7.0.5",
        "mac": "02:42:0a:07:00:05",
        "vtep": "10.0.0.9",
        "source": "static",
        "host": None,
        "container": None,
    },
]


Docs = dict[str, list[dict[str, Any]]]


def link(ifindex: int, ifname: str, kind: str | None, mtu: int, **extra: Any) -> dict[str, Any]:
    row = {
        "ifindex": ifindex,
        "ifname": ifname,
        "kind": kind,
        "vni": None,
        "mtu": mtu,
        "master": None,
        "operstate": "UP",
        "up": True,
        "alias": None,
        "network_id": None,
        "endpoint_id": None,
        "foreign": True,
        "vxlan": None,
    }
    row.update(extra)
    return row


def fdb_row(mac: str, dst: str | None, **extra: Any) -> dict[str, Any]:
    row = {
        "ifindex": 5,
        "ifname": "vx-42",
        "mac": mac,
        "dst": dst,
        "vni": 42,
        "state": "PERMANENT",
        "flags": ["self"],
        "master": None,
        "network_id": NET,
        "foreign": False,
        "source": "peer",
    }
    row.update(extra)
    return row


def neigh_row(ip: str, mac: str | None, state: str = "PERMANENT", **extra: Any) -> dict[str, Any]:
    row = {
        "ifindex": 5,
        "ifname": "vx-42",
        "ip": ip,
        "mac": mac,
        "state": state,
        "network_id": NET,
        "foreign": False,
    }
    row.update(extra)
    return row


def healthy() -> Docs:
    """One pre-programmed network on hosta (VTEP 10.0.0.1), two remote peers, all well."""
    vxlan = {
        "vni": 42,
        "port": 4789,
        "group": None,
        "local": "10.0.0.1",
        "dev": "eth1",
        "learning": False,
        "proxy": True,
        "l2miss": True,
        "l3miss": True,
        "ageing": 300,
        "limit": 0,
    }
    return {
        "networks": [
            {
                "network_id": NET,
                "vni": 42,
                "vxlan_name": "vx-42",
                "bridge_name": "br-42",
                "vxlan_mtu": 1450,
                "bridge_mtu": 1450,
                "gateways": ["192.168.42.1/24"],
                "options": {
                    "VxlanId": "42",
                    "VtepDev": "eth1",
                    "L2miss": "true",
                    "L3miss": "true",
                    "Proxy": "true",
                },
                "scope": "local",
                "resolve": "preprogram",
            },
        ],
        "links": [
            link(1, "lo", None, 65536),
            link(2, "eth1", "veth", 1500),
            link(4, "br-42", "bridge", 1450, network_id=NET, foreign=False),
            link(
                5,
                "vx-42",
                "vxlan",
                1450,
                vni=42,
                master="br-42",
                network_id=NET,
                foreign=False,
                vxlan=vxlan,
                operstate="UNKNOWN",
            ),
            link(
                6,
                "vethab12",
                "veth",
                1450,
                master="br-42",
                network_id=NET,
                endpoint_id=EP,
                foreign=False,
            ),
        ],
        "fdb": [
            fdb_row("02:42:c0:a8:2a:03", "10.0.0.2"),
            fdb_row("02:42:c0:a8:2a:04", "10.0.0.3"),
            fdb_row("00:00:00:00:00:00", "10.0.0.2", source="other"),
            fdb_row("00:00:00:00:00:00", "10.0.0.3", source="other"),
            # The bridge's entry for the vxlan port's own MAC, and multicast: not foreign.
            fdb_row(VX_MAC, None, flags=["master"], master=4, source="other"),
            fdb_row("33:33:00:00:00:01", None, source="other"),
            fdb_row(
                LOCAL_MAC,
                None,
                ifname="vethab12",
                ifindex=6,
                flags=["master"],
                state="REACHABLE",
                source="learned",
                master=4,
            ),
        ],
        "neigh": [
            neigh_row("192.168.42.3", "02:42:c0:a8:2a:03"),
            neigh_row("192.168.42.4", "02:42:c0:a8:2a:04"),
            neigh_row("192.168.42.2", LOCAL_MAC, "REACHABLE", ifname="br-42", ifindex=4),
        ],
        "peers": copy.deepcopy(PEERS),
        "misses": [
            {
                "type": "l3miss",
                "vni": 42,
                "ifname": "vx-42",
                "subject": "192.168.42.3",
                "count": 1,
                "answered": 1,
                "unanswered": 0,
                "failed": 0,
                "last_seen": 1.0,
            },
        ],
        "endpoints": [
            {
                "endpoint_id": EP,
                "network_id": NET,
                "host_ifname": "vethab12",
                "container_ifname": "eth0",
                "mac": LOCAL_MAC,
                "address": "192.168.42.2/24",
                "address6": None,
                "joined": True,
            },
        ],
    }
