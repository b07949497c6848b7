"""The daemon's event engine on real traffic between two netns "hosts".

Hand-made vxlan links (vx-42, with l2miss l3miss proxy nolearning) on both
hosts: the daemon also works as a pure observer of links it did not create.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from vxlan_evt.testing.daemon import DaemonProcess, wait_for
from vxlan_evt.testing.netns import VxlanHost, two_hosts

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces and links"),
]

Rig = tuple[VxlanHost, VxlanHost]


@pytest.fixture
def rig() -> Iterator[Rig]:
    with two_hosts() as hosts:
        yield hosts


def peers_file(path: Path, other: VxlanHost) -> Path:
    peers = {
        "42": [{"ip": other.container_ip, "mac": other.container_mac, "vtep": other.underlay_ip}]
    }
    path.write_text(json.dumps(peers))
    return path


def start(host: VxlanHost, workdir: Path, *args: str) -> DaemonProcess:
    workdir.mkdir()
    return DaemonProcess(host.host.name, workdir, *args).start()


def ping(host: VxlanHost, address: str, count: int = 3) -> subprocess.CompletedProcess[str]:
    argv = [
        "ip",
        "netns",
        "exec",
        host.container.name,
        "ping",
        "-c",
        str(count),
        "-W",
        "2",
        address,
    ]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@pytest.fixture
def daemons(rig: Rig, tmp_path: Path) -> Iterator[tuple[DaemonProcess, DaemonProcess]]:
    a, b = rig
    first = start(a, tmp_path / "a", "--peers", str(peers_file(tmp_path / "a.json", b)))
    second = start(b, tmp_path / "b", "--peers", str(peers_file(tmp_path / "b.json", a)))
    try:
        yield first, second
    finally:
        first.stop(signal.SIGKILL)
        second.stop(signal.SIGKILL)


def test_l3_miss_is_exposed_and_answered_from_the_peers_file(
    rig: Rig, daemons: tuple[DaemonProcess, DaemonProcess]
) -> None:
    a, b = rig
    daemon_a, _ = daemons
    result = ping(a, b.container_ip)
    assert "bytes from" in result.stdout, result.stdout + daemon_a.log()

    misses = daemon_a.get("events", type="l3miss")
    assert any(
        e["ip"] == b.container_ip and e["vni"] == 42 and e["ifname"] == "vx-42" for e in misses
    ), misses
    populated = daemon_a.get("events", type="populate")
    assert any(e["subject"] == b.container_ip and e["result"] == "answered" for e in populated)
    neigh = a.host.ip("neigh", "show", "dev", "vx-42")
    assert f"{b.container_ip} lladdr {b.container_mac} PERMANENT" in neigh
    fdb = a.host.bridge("fdb", "show", "dev", "vx-42")
    assert f"{b.container_mac} dst {b.underlay_ip} self permanent" in fdb
    row = next(r for r in daemon_a.get("misses") if r["subject"] == b.container_ip)
    assert row["answered"] >= 1 and row["unanswered"] == 0
    # The observe tables show what was programmed, marked as coming from the peer table.
    fdb_rows = daemon_a.get("fdb")
    assert any(r["mac"] == b.container_mac and r["source"] == "peer" for r in fdb_rows), fdb_rows
    assert any(r["ip"] == b.container_ip for r in daemon_a.get("neigh"))
    assert 'vxlan_evt_misses_total{result="answered",type="l3miss"}' in daemon_a.get("metrics")


def test_l2_miss_is_exposed_and_answered(
    rig: Rig, daemons: tuple[DaemonProcess, DaemonProcess]
) -> None:
    a, b = rig
    daemon_a, _ = daemons
    # The container already knows B's MAC, so only the vxlan FDB is missing: an L2 miss.
    a.container.ip("neigh", "replace", b.container_ip, "lladdr", b.container_mac, "dev", "eth0")
    result = ping(a, b.container_ip)
    assert "bytes from" in result.stdout, result.stdout + daemon_a.log()
    misses = daemon_a.get("events", type="l2miss")
    assert any(e["mac"] == b.container_mac and e["vni"] == 42 for e in misses), misses
    fdb = a.host.bridge("fdb", "show", "dev", "vx-42")
    assert f"{b.container_mac} dst {b.underlay_ip} self permanent" in fdb


def test_without_populate_misses_are_only_watched(rig: Rig, tmp_path: Path) -> None:
    a, b = rig
    daemon = start(
        a, tmp_path / "a", "--no-populate", "--peers", str(peers_file(tmp_path / "p.json", b))
    )
    try:
        result = ping(a, b.container_ip, count=1)
        assert result.returncode != 0
        assert wait_for(lambda: daemon.get("events", type="l3miss"))
        assert b.container_ip not in a.host.ip("neigh", "show", "dev", "vx-42")
        assert b.container_mac not in a.host.bridge("fdb", "show", "dev", "vx-42")
        row = next(r for r in daemon.get("misses") if r["subject"] == b.container_ip)
        assert row["unanswered"] >= 1 and row["answered"] == 0
    finally:
        daemon.stop(signal.SIGKILL)


def test_unknown_ip_is_counted_and_nothing_is_written(
    rig: Rig, daemons: tuple[DaemonProcess, DaemonProcess]
) -> None:
    a, _ = rig
    daemon_a, _ = daemons
    ping(a, "192.168.42.77", count=1)
    rows = wait_for(lambda: [r for r in daemon_a.get("misses") if r["subject"] == "192.168.42.77"])
    assert rows and rows[0]["unanswered"] >= 1
    assert "192.168.42.77" not in a.host.ip("neigh", "show", "dev", "vx-42")


def test_link_changes_arrive_as_events(rig: Rig, tmp_path: Path) -> None:
    a, _ = rig
    daemon = start(a, tmp_path / "a")
    try:
        a.host.ip("link", "set", "vx-42", "down")
        a.host.ip("link", "set", "vx-42", "mtu", "1400")
        a.host.ip("link", "set", "vx-42", "up")

        def actions() -> list[str]:
            events = daemon.get("events", type="link", ifname="vx-42")
            return [e["action"] for e in events]

        assert wait_for(lambda: {"down", "mtu", "up"} <= set(actions())), actions()
        events = daemon.get("events", type="link", ifname="vx-42")
        assert all(e["foreign"] for e in events)  # a hand-made link: reported, marked foreign
    finally:
        daemon.stop(signal.SIGKILL)


def row_of(table: str, *needles: str) -> str:
    """The one line of a CLI table holding every needle (fails if none does)."""
    lines = [line for line in table.splitlines() if all(n in line for n in needles)]
    assert len(lines) == 1, f"want one row with {needles} in:\n{table}"
    return lines[0]


def test_cli_verbs_print_what_the_traffic_did(
    rig: Rig, daemons: tuple[DaemonProcess, DaemonProcess]
) -> None:
    a, b = rig
    daemon_a, _ = daemons
    assert "bytes from" in ping(a, b.container_ip).stdout, daemon_a.log()

    fdb = daemon_a.cli("fdb").stdout
    row = row_of(fdb, b.container_mac, b.underlay_ip)
    assert "vx-42" in row and "peer" in row and "foreign" in row
    neigh = daemon_a.cli("neigh").stdout
    assert "PERMANENT" in row_of(neigh, b.container_ip, b.container_mac)
    assert "static" in row_of(daemon_a.cli("peers").stdout, b.container_ip, b.underlay_ip)
    assert "foreign" in row_of(daemon_a.cli("links").stdout, "vx-42")
    misses = daemon_a.cli("misses").stdout
    assert "l3miss" in row_of(misses, b.container_ip)

    lines = daemon_a.cli("events", "--type", "l3miss", "--json").stdout.splitlines()
    events = [json.loads(line) for line in lines]
    assert events and all(e["type"] == "l3miss" for e in events)
    assert any(e["ip"] == b.container_ip and e["vni"] == 42 for e in events), events
    text = daemon_a.cli("events", "--type", "l3miss").stdout
    assert b.container_ip in text and "vx-42" in text

    # An operator puts an address on a link: the CLI shows it as an `addr` event.
    a.host.ip("addr", "add", "198.51.100.7/32", "dev", "vx-42")
    try:
        deadline = time.monotonic() + 10
        while True:
            lines = daemon_a.cli("events", "--type", "addr", "--json").stdout.splitlines()
            added = [json.loads(line) for line in lines]
            if any(e["ip"] == "198.51.100.7" and e["action"] == "add" for e in added):
                break
            assert time.monotonic() < deadline, (added, daemon_a.log())
            time.sleep(0.1)
        assert all(e["type"] == "addr" for e in added)
    finally:
        a.host.ip("addr", "del", "198.51.100.7/32", "dev", "vx-42")

    bad = daemon_a.cli("events", "--type", "l3mis", check=False)
    assert bad.returncode != 0 and "l3mis" in bad.stderr and "l3miss" in bad.stderr


def test_cli_follow_prints_live_link_events(
    rig: Rig, daemons: tuple[DaemonProcess, DaemonProcess]
) -> None:
    a, _ = rig
    daemon_a, _ = daemons
    argv = [
        sys.executable, "-m", "vxlan_evt", "events", "--follow", "--json",
        "--type", "link", "--ifname", "vx-42", "--api-socket", str(daemon_a.api_socket),
    ]  # fmt: skip
    with subprocess.Popen(argv, stdout=subprocess.PIPE, text=True) as follower:
        try:
            time.sleep(1.0)  # connected and past the history
            a.host.ip("link", "set", "vx-42", "mtu", "1400")
            assert follower.stdout is not None
            seen = []
            deadline = time.monotonic() + 10
            while time.monotonic() < deadline:
                event = json.loads(follower.stdout.readline())
                seen.append(event)
                if event.get("mtu") == 1400:
                    break
            assert any(e["action"] == "mtu" and e["mtu"] == 1400 for e in seen), seen
        finally:
            follower.terminate()
