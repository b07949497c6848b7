"""Pre-programming from the peer table: entries exist before the first packet.

Two netns hosts joined by an underlay, each running the real daemon. The
network is created through the plugin API (as Docker would), and the
container end of each endpoint is moved into a "container" netns the way
Docker does on Join.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from vxlan_evt.testing.daemon import NETWORK_ID, DaemonProcess, join_container, wait_for
from vxlan_evt.testing.netns import VxlanHost, add_underlay, namespaces

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces and links"),
]


@pytest.fixture
def hosts(tmp_path: Path) -> Iterator[tuple[tuple[VxlanHost, DaemonProcess], ...]]:
    with namespaces("pa", "pca", "pb", "pcb") as (ha, ca, hb, cb):
        a, b = VxlanHost(ha, ca, 1, 42), VxlanHost(hb, cb, 2, 42)
        add_underlay(a, b)
        daemons = []
        try:
            for me, other in ((a, b), (b, a)):
                peers = tmp_path / f"peers-{me.n}.json"
                peers.write_text(json.dumps({"42": [peer_of(other)]}))
                workdir = tmp_path / f"d{me.n}"
                workdir.mkdir()
                daemon = DaemonProcess(me.host.name, workdir, "--peers", str(peers)).start()
                daemons.append(daemon)
                daemon.ok(
                    "NetworkDriver.CreateNetwork",
                    {
                        "NetworkID": NETWORK_ID,
                        "Options": {
                            "com.docker.network.generic": {
                                "VxlanId": "42",
                                "VtepDev": "ul0",
                                "SrcAddr": me.underlay_ip,
                                "L2miss": "true",
                                "L3miss": "true",
                                "Proxy": "true",
                                "Learning": "false",
                            }
                        },
                        "IPv4Data": [{"Pool": "192.168.42.0/24", "Gateway": "192.168.42.254/24"}],
                    },
                )
                join_container(me, daemon, f"{me.n}" * 64)
            yield (a, daemons[0]), (b, daemons[1])
        finally:
            for daemon in daemons:
                daemon.stop(signal.SIGKILL)


def peer_of(host: VxlanHost) -> dict[str, str]:
    return {"ip": host.container_ip, "mac": host.container_mac, "vtep": host.underlay_ip}


def test_entries_exist_before_the_first_packet_and_it_is_fast(
    hosts: tuple[tuple[VxlanHost, DaemonProcess], ...],
) -> None:
    (a, daemon_a), (b, _) = hosts
    fdb = a.host.bridge("fdb", "show", "dev", "vx-42")
    assert f"{b.container_mac} dst {b.underlay_ip} self permanent" in fdb
    assert f"00:00:00:00:00:00 dst {b.underlay_ip} self permanent" in fdb  # flooding, no Group
    neigh = a.host.ip("neigh", "show", "dev", "vx-42")
    assert f"{b.container_ip} lladdr {b.container_mac} PERMANENT" in neigh

    ping = subprocess.run(
        ["ip", "netns", "exec", a.container.name, "ping", "-c", "1", "-W", "2", b.container_ip],
        capture_output=True,
        text=True,
    )
    assert ping.returncode == 0, ping.stdout + daemon_a.log()
    rtt = float(re.search(r"time=([\d.]+) ms", ping.stdout).group(1))  # type: ignore[union-attr]
    print(f"first ping RTT with pre-programmed entries: {rtt} ms")
    # A miss-driven first ping waits ~1 s for the ARP retry; pre-programmed it does not.
    assert rtt < 200
    assert not daemon_a.get("events", type="l3miss"), "the first packet should not miss"

    rows = daemon_a.get("fdb")
    sources = {(r["mac"], r["dst"]): r["source"] for r in rows if r["ifname"] == "vx-42"}
    assert sources[("00:00:00:00:00:00", b.underlay_ip)] == "flood"
    assert sources[(b.container_mac, b.underlay_ip)] == "peer"
    bridged = [r for r in rows if "master" in r["flags"]]
    assert bridged and all(r["master"] == "br-42" for r in bridged), bridged


def test_a_peer_leaving_the_table_takes_only_our_entries_with_it(
    hosts: tuple[tuple[VxlanHost, DaemonProcess], ...], tmp_path: Path
) -> None:
    (a, _), (b, _) = hosts
    foreign = "02:00:00:00:00:99"
    a.host.bridge("fdb", "add", foreign, "dev", "vx-42", "dst", "10.99.0.99", "self", "permanent")
    (tmp_path / "peers-1.json").write_text(json.dumps({"42": []}))

    def gone() -> bool:
        return b.container_mac not in a.host.bridge("fdb", "show", "dev", "vx-42")

    assert wait_for(gone), a.host.bridge("fdb", "show", "dev", "vx-42")
    assert b.container_ip not in a.host.ip("neigh", "show", "dev", "vx-42")
    assert foreign in a.host.bridge("fdb", "show", "dev", "vx-42")


def test_entries_deleted_by_hand_are_repaired_on_restart(
    hosts: tuple[tuple[VxlanHost, DaemonProcess], ...],
) -> None:
    (a, daemon_a), (b, _) = hosts
    a.host.bridge("fdb", "del", b.container_mac, "dev", "vx-42", "dst", b.underlay_ip, "self")
    daemon_a.stop(signal.SIGTERM)
    daemon_a.start()
    assert f"{b.container_mac} dst {b.underlay_ip} self permanent" in a.host.bridge(
        "fdb", "show", "dev", "vx-42"
    )


def test_doctor_finds_a_healthy_network_and_then_a_foreign_entry(
    hosts: tuple[tuple[VxlanHost, DaemonProcess], ...],
) -> None:
    (a, daemon_a), _ = hosts
    healthy = daemon_a.cli("doctor", "--json")
    findings = json.loads(healthy.stdout)
    problems = [f for f in findings if f["level"] != "ok"]
    assert not problems, healthy.stdout
    checks = {f["check"] for f in findings}
    assert {"peer-fdb", "peer-neigh", "foreign-entries", "misses", "mtu"} <= checks, checks
    print(daemon_a.cli("doctor").stdout)

    stray = "02:00:00:00:00:77"
    a.host.bridge("fdb", "add", stray, "dev", "vx-42", "dst", "10.99.0.77", "self", "permanent")
    try:
        found = daemon_a.cli("doctor", check=False)
        assert found.returncode != 0 or "warn" in found.stdout, found.stdout
        assert stray in found.stdout and "foreign-fdb" in found.stdout, found.stdout
    finally:
        a.host.bridge("fdb", "del", stray, "dev", "vx-42", "dst", "10.99.0.77", "self")
