"""Human views of observe-API documents: aligned tables, one-line events, empty messages."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from vxlan_evt.cli import views
from vxlan_evt.testing.observe_samples import EP, NET, healthy

# 2024-05-01 12:34:56.789 UTC
STAMP = datetime(2024, 5, 1, 12, 34, 56, 789000, tzinfo=UTC).timestamp()


def columns(line: str) -> list[str]:
    return line.split()


def starts(text: str) -> list[int]:
    """Where each column starts in the header line."""
    header = text.splitlines()[0]
    return [i for i, ch in enumerate(header) if ch != " " and (i == 0 or header[i - 1] == " ")]


def test_table_aligns_columns_and_leaves_the_last_unpadded() -> None:
    rows: list[dict[str, Any]] = [
        {"a": "x", "b": 1, "c": None},
        {"a": "longer", "b": [], "c": ["p", "q"]},
    ]
    text = views.table(
        [("A", lambda r: r["a"]), ("BB", lambda r: r["b"]), ("C", lambda r: r["c"])], rows, "none"
    )
    assert text.splitlines() == ["A       BB  C", "x       1   -", "longer  -   p,q"]
    assert views.table([("A", lambda r: r["a"])], [], "no rows") == "no rows"


def test_cells() -> None:
    assert views.cell(None) == views.cell("") == views.cell([]) == "-"
    assert views.cell(True) == "yes" and views.cell(False) == "no"
    assert views.cell(("self", "extern_learn")) == "self,extern_learn"
    assert views.short_id(NET) == "a1b2c3d4e5f6" and views.short_id(None) == "-"


@pytest.mark.parametrize(
    ("render", "empty"),
    [
        (views.networks, "no networks"),
        (views.endpoints, "no endpoints"),
        (views.links, "no links"),
        (views.fdb, "no FDB entries"),
        (views.neigh, "no neighbour entries"),
        (views.peers, "no peers"),
        (views.misses, "no misses"),
        (views.ondemand, "no on-demand entries"),
    ],
)
def test_empty_tables_say_so_in_one_line(render: Any, empty: str) -> None:
    text = render([])
    assert text.startswith(empty) and "\n" not in text


def test_every_resource_has_a_table() -> None:
    assert set(views.TABLES) == {
        "networks",
        "endpoints",
        "links",
        "fdb",
        "neigh",
        "peers",
        "misses",
        "ondemand",
    }


def test_networks() -> None:
    text = views.networks(healthy()["networks"])
    header, row = text.splitlines()
    assert columns(header)[:9] == [
        "NETWORK",
        "STATUS",
        "VNI",
        "VXLAN",
        "BRIDGE",
        "MTU",
        "GATEWAYS",
        "RESOLVE",
        "SCOPE",
    ]
    assert columns(row)[:9] == [
        "a1b2c3d4e5f6",
        "ok",
        "42",
        "vx-42",
        "br-42",
        "1450/1450",
        "192.168.42.1/24",
        "preprogram",
        "local",
    ]
    assert row.endswith("VxlanId=42 VtepDev=eth1 L2miss=true L3miss=true Proxy=true")
    degraded = {**healthy()["networks"][0], "degraded": "VtepDev: no device 'eth2'"}
    assert columns(views.networks([degraded]).splitlines()[1])[1] == "degraded"


def test_endpoints() -> None:
    header, row = views.endpoints(healthy()["endpoints"]).splitlines()
    assert columns(row) == [
        EP[:12],
        NET[:12],
        "vethab12",
        "eth0",
        "02:42:c0:a8:2a:02",
        "192.168.42.2/24",
        "-",
        "yes",
    ]
    assert starts(views.endpoints(healthy()["endpoints"])) == [
        header.index(c) for c in columns(header)
    ]


def test_links_show_owner_state_and_vxlan_settings() -> None:
    text = views.links(healthy()["links"])
    lines = {columns(line)[1]: line for line in text.splitlines()[1:]}
    assert columns(text.splitlines()[0]) == [
        "IFINDEX",
        "IFNAME",
        "KIND",
        "VNI",
        "MTU",
        "MASTER",
        "STATE",
        "NETWORK",
        "ENDPOINT",
        "VXLAN",
    ]
    assert columns(lines["vx-42"]) == [
        "5",
        "vx-42",
        "vxlan",
        "42",
        "1450",
        "br-42",
        "UP/UNKNOWN",
        NET[:12],
        "-",
        "dev",
        "eth1",
        "local",
        "10.0.0.1",
        "port",
        "4789",
        "proxy",
        "l2miss",
        "l3miss",
    ]
    assert columns(lines["eth1"])[7] == "foreign"
    assert columns(lines["vethab12"])[8] == EP[:12]
    # Sorted by ifindex, aligned under the header.
    assert [columns(line)[0] for line in text.splitlines()[1:]] == ["1", "2", "4", "5", "6"]
    header = text.splitlines()[0]
    assert all(line[header.index("MTU") - 1] == " " for line in text.splitlines())


def test_fdb_names_network_source_and_the_remote_container() -> None:
    docs = healthy()
    text = views.fdb(docs["fdb"], docs["peers"])
    header = text.splitlines()[0]
    assert columns(header) == [
        "MAC",
        "DST",
        "DEV",
        "VNI",
        "STATE",
        "FLAGS",
        "NETWORK",
        "ENDPOINT",
        "SOURCE",
        "REMOTE",
    ]
    row = next(line for line in text.splitlines() if line.startswith("02:42:c0:a8:2a:03"))
    assert columns(row) == [
        "02:42:c0:a8:2a:03",
        "10.0.0.2",
        "vx-42",
        "42",
        "PERMANENT",
        "self",
        NET[:12],
        "-",
        "peer",
        "web@hostb",
    ]
    # Without the peer table the REMOTE column is just empty.
    assert columns(views.fdb(docs["fdb"]).splitlines()[1])[-1] == "-"


def test_neigh_sorted_by_device_then_address() -> None:
    docs = healthy()
    docs["neigh"].append(dict(docs["neigh"][0], ip="192.168.42.10", mac="02:42:c0:a8:2a:0a"))
    lines = views.neigh(docs["neigh"], docs["peers"]).splitlines()
    assert columns(lines[0]) == ["IP", "MAC", "DEV", "STATE", "NETWORK", "ENDPOINT", "REMOTE"]
    assert [columns(line)[0] for line in lines[1:]] == [
        "192.168.42.2",
        "192.168.42.3",
        "192.168.42.4",
        "192.168.42.10",
    ]
    assert columns(lines[2])[-1] == "web@hostb"


def test_peers_and_ondemand() -> None:
    lines = views.peers(healthy()["peers"]).splitlines()
    assert columns(lines[0]) == ["VNI", "IP", "MAC", "VTEP", "SOURCE", "HOST", "CONTAINER"]
    assert columns(lines[1]) == [
        "7",
        "10.7.0.5",
        "02:42:0a:07:00:05",
        "10.0.0.9",
        "static",
        "-",
        "-",
    ]
    row = {
        "ifname": "vx-42",
        "vni": 42,
        "mac": "02:42:c0:a8:2a:03",
        "vtep": "10.0.0.2",
        "ips": ["192.168.42.3"],
        "age_seconds": 12.5,
        "idle_seconds": 3.0,
        "idle_timeout": 300.0,
    }
    assert columns(views.ondemand([row]).splitlines()[1])[-3:] == ["12.5s", "3.0s", "300.0s"]


def test_misses_show_how_long_ago() -> None:
    rows = [
        {
            "type": "l3miss",
            "vni": 42,
            "ifname": "vx-42",
            "subject": "192.168.42.9",
            "count": 5,
            "answered": 0,
            "unanswered": 5,
            "last_seen": 1000.0,
        },
        {
            "type": "l2miss",
            "vni": 42,
            "ifname": "vx-42",
            "subject": "02:42:c0:a8:2a:09",
            "count": 1,
            "answered": 1,
            "unanswered": 0,
            "failed": 0,
            "last_seen": 0,
        },
    ]
    lines = views.misses(rows, now=1000.0 + 2 * 3600 + 5).splitlines()
    assert "LAST SEEN" in lines[0]
    assert columns(lines[1]) == [
        "l3miss",
        "42",
        "vx-42",
        "192.168.42.9",
        "5",
        "0",
        "5",
        "0",
        "2h",
        "ago",
    ]
    assert columns(lines[2])[-1] == "-"
    assert [views.ago(100, now) for now in (100.4, 161, 100 + 86400 * 3)] == [
        "0s ago",
        "1m ago",
        "3d ago",
    ]


def event(kind: str, /, **fields: Any) -> dict[str, Any]:
    return {
        "type": kind,
        "seq": 7,
        "timestamp": STAMP,
        "network_id": NET,
        "endpoint_id": None,
        "foreign": False,
        **fields,
    }


@pytest.mark.parametrize(
    ("document", "line"),
    [
        (
            event("l3miss", ifindex=5, ifname="vx-42", vni=42, ip="192.168.42.9"),
            "12:34:56.789  l3miss    vx-42            who has 192.168.42.9? vni 42  net=a1b2c3d4e5f6  #7",
        ),
        (
            event("l2miss", ifindex=5, ifname="vx-42", vni=42, mac="02:42:c0:a8:2a:09"),
            "12:34:56.789  l2miss    vx-42            who has mac 02:42:c0:a8:2a:09? vni 42  net=a1b2c3d4e5f6  #7",
        ),
        (
            event(
                "fdb",
                action="add",
                ifindex=5,
                ifname="vx-42",
                vni=42,
                mac="02:42:c0:a8:2a:03",
                dst="10.0.0.2",
                remote_vni=None,
                port=None,
                vlan=None,
                flags=["self"],
                state="PERMANENT",
                master=None,
            ),
            "12:34:56.789  fdb       vx-42            add 02:42:c0:a8:2a:03 dst 10.0.0.2 vni 42 PERMANENT self  net=a1b2c3d4e5f6  #7",
        ),
        (
            event(
                "neigh",
                action="del",
                ifindex=6,
                ifname="vethab12",
                ip="192.168.42.2",
                mac="02:42:c0:a8:2a:02",
                state="STALE",
                vni=None,
                flags=[],
                endpoint_id=EP,
            ),
            "12:34:56.789  neigh     vethab12         del 192.168.42.2 mac 02:42:c0:a8:2a:02 STALE  net=a1b2c3d4e5f6  ep=e0e1e2e3e4e5  #7",
        ),
        (
            event(
                "link",
                action="up",
                ifindex=5,
                ifname="vx-42",
                kind="vxlan",
                vni=42,
                mtu=1450,
                master=4,
                ifalias="x",
                operstate="UNKNOWN",
                up=True,
                mac=None,
                changes=["up", "mtu"],
            ),
            "12:34:56.789  link      vx-42            up kind vxlan vni 42 mtu 1450 master 4 UNKNOWN changes up,mtu  net=a1b2c3d4e5f6  #7",
        ),
        (
            event(
                "populate",
                miss="l3miss",
                vni=42,
                ifname="vx-42",
                subject="192.168.42.3",
                result="answered",
                peer_vtep="10.0.0.2",
                detail=None,
            ),
            "12:34:56.789  populate  vx-42            answered 192.168.42.3 -> vtep 10.0.0.2 vni 42  net=a1b2c3d4e5f6  #7",
        ),
        (
            event(
                "resync",
                network_id=None,
                foreign=True,
                losses=2,
                total_losses=5,
                drained=10,
                links=12,
                neighbours=4,
                fdb=9,
            ),
            "12:34:56.789  resync    -                2 losses (total 5); re-read links 12 neighbours 4 fdb 9  #7",
        ),
        (
            event("decode_problem", network_id=None, reason="short", msg_type=28, raw_hex="00"),
            "12:34:56.789  decode_problem  -                short msg_type 28  #7",
        ),
        (
            event("future", network_id=None, ifname="eth0", colour="blue"),
            "12:34:56.789  future    eth0             colour=blue  #7",
        ),
    ],
)
def test_event_lines(document: dict[str, Any], line: str) -> None:
    assert views.event_line(document, tz=UTC) == line


def test_event_line_without_timestamp_or_seq() -> None:
    document = {"type": "l3miss", "ifname": "vx-42", "ip": "192.168.42.9"}
    assert (
        views.event_line(document)
        == "--:--:--.---  l3miss    vx-42            who has 192.168.42.9?"
    )
    assert views.event_line({**document, "timestamp": 0.0}).startswith("--:--:--.---  l3miss")


def test_event_line_uses_local_time_by_default() -> None:
    local = datetime.fromtimestamp(STAMP).strftime("%H:%M:%S")
    assert views.event_line(event("l3miss", ip="192.168.42.9")).startswith(local + ".789")
