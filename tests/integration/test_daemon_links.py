"""The real daemon in a throwaway netns: every option reaches the kernel link."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vxlan_evt.testing.daemon import DaemonProcess, wait_for

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces and links"),
]

NET = "a" * 64
EP = "b" * 64


def sh(netns: str, *argv: str) -> str:
    return subprocess.run(
        ["ip", "netns", "exec", netns, *argv], check=True, capture_output=True, text=True
    ).stdout


@pytest.fixture
def netns() -> Iterator[str]:
    """A namespace with an underlay `eth1` (veth, MTU 9000, 10.1.1.1/24)."""
    name = f"vxevt-t-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        sh(name, "ip", "link", "set", "lo", "up")
        sh(name, "ip", "link", "add", "eth1", "mtu", "9000", "type", "veth", "peer", "eth1p")
        sh(name, "ip", "addr", "add", "10.1.1.1/24", "dev", "eth1")
        sh(name, "ip", "link", "set", "eth1", "up")
        sh(name, "ip", "link", "set", "eth1p", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def daemon(netns: str, tmp_path: Path) -> Iterator[DaemonProcess]:
    process = DaemonProcess(netns, tmp_path).start()
    try:
        yield process
    finally:
        process.stop(signal.SIGKILL)


def create_network(daemon: DaemonProcess, **options: str) -> tuple[int, Any]:
    return daemon.call(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NET,
            "Options": {"com.docker.network.generic": {"VxlanId": "42", **options}},
            "IPv4Data": [{"Pool": "10.42.0.0/24", "Gateway": "10.42.0.254/24"}],
        },
    )


ALL_OPTIONS = {
    "VtepDev": "eth1",
    "SrcAddr": "10.1.1.1",
    "Group": "239.1.1.1",
    "TTL": "5",
    "TOS": "3",
    "Learning": "false",
    "Proxy": "true",
    "RSC": "true",
    "L2miss": "true",
    "L3miss": "true",
    "GBP": "true",
    "Age": "100",
    "Limit": "1000",
    "Port": "4790",
    "PortLow": "5000",
    "PortHigh": "6000",
    "vxlanName": "vxa",
    "vxlanMTU": "1400",
    "vxlanHardwareAddr": "02:00:00:00:aa:01",
    "vxlanTxQLen": "700",
    "bridgeName": "bra",
    "bridgeMTU": "1300",
    "bridgeHardwareAddr": "02:00:00:00:bb:01",
    "bridgeTXQLen": "500",
}


def test_every_option_reaches_the_kernel(daemon: DaemonProcess, netns: str) -> None:
    status, document = create_network(daemon, **ALL_OPTIONS)
    assert status == 200, document
    vxlan = sh(netns, "ip", "-d", "link", "show", "vxa")
    for expected in (
        "mtu 1400",
        "master bra",
        "qlen 700",
        "link/ether 02:00:00:00:aa:01",
        "alias vxlan-evt net=" + NET,
        "vxlan id 42 group 239.1.1.1 local 10.1.1.1 dev eth1 srcport 5000 6000 dstport 4790",
        "nolearning proxy rsc l2miss l3miss tos 0x3 ttl 5 ageing 100 maxaddr 1000",
        "gbp",
    ):
        assert expected in vxlan, f"{expected!r} not in:\n{vxlan}"
    bridge = sh(netns, "ip", "-d", "link", "show", "bra")
    for expected in ("mtu 1300", "qlen 500", "link/ether 02:00:00:00:bb:01", "state UP"):
        assert expected in bridge, f"{expected!r} not in:\n{bridge}"
    assert "inet 10.42.0.254/24" in sh(netns, "ip", "addr", "show", "bra")


def test_noage_and_ipv6_group(daemon: DaemonProcess, netns: str) -> None:
    sh(netns, "ip", "-6", "addr", "add", "fd00::1/64", "dev", "eth1", "nodad")
    status, document = create_network(
        daemon, VtepDev="eth1", NoAge="true", Group="ff05::42", SrcAddr="fd00::1"
    )
    assert status == 200, document
    vxlan = sh(netns, "ip", "-d", "link", "show", "vx-42")
    assert "group ff05::42 local fd00::1" in vxlan
    assert "ageing 4294967295" in vxlan  # the kernel reads 0 as its 300 s default
    assert "mtu 8930" in vxlan  # 9000 - 70 bytes of VXLAN over IPv6


def test_mtu_follows_the_underlay_and_reaches_the_endpoint(
    daemon: DaemonProcess, netns: str
) -> None:
    assert create_network(daemon, VtepDev="eth1")[0] == 200
    assert "mtu 8950" in sh(netns, "ip", "link", "show", "vx-42")
    assert "mtu 8950" in sh(netns, "ip", "link", "show", "br-42")
    created = daemon.ok(
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "10.42.0.7/24"}},
    )
    mac = created["Interface"]["MacAddress"]
    joined = daemon.ok("NetworkDriver.Join", {"NetworkID": NET, "EndpointID": EP})
    container_end = sh(netns, "ip", "link", "show", joined["InterfaceName"]["SrcName"])
    assert "mtu 8950" in container_end and mac in container_end
    assert "master br-42" in sh(netns, "ip", "link", "show", "vh" + EP[:11])


def test_bad_options_create_nothing(daemon: DaemonProcess, netns: str) -> None:
    before = sh(netns, "ip", "-o", "link")
    status, document = create_network(daemon, VtepDev="eth7", TTL="300", Colour="red")
    assert status == 400
    assert "TTL" in document["Err"] and "Colour" in document["Err"]
    status, document = create_network(daemon, VtepDev="eth7")
    assert status == 400 and "VtepDev: there is no device 'eth7'" in document["Err"]
    assert sh(netns, "ip", "-o", "link") == before


def test_foreign_links_are_never_touched(daemon: DaemonProcess, netns: str) -> None:
    sh(netns, "ip", "link", "add", "br-42", "type", "bridge")
    status, document = create_network(daemon, VtepDev="eth1")
    assert status == 400 and "not created by vxlan-evt" in document["Err"]
    daemon.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
    assert "br-42" in sh(netns, "ip", "-o", "link")


def test_restart_reconciles_with_the_kernel(netns: str, tmp_path: Path) -> None:
    first = DaemonProcess(netns, tmp_path).start()
    try:
        assert create_network(first, VtepDev="eth1")[0] == 200
        first.ok(
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "10.42.0.7/24"}},
        )
    finally:
        first.stop(signal.SIGKILL)
    bridge_index = sh(netns, "cat", "/sys/class/net/br-42/ifindex")
    sh(netns, "ip", "link", "del", "vx-42")  # lost while we were down
    sh(netns, "ip", "link", "add", "br-leak", "type", "bridge")
    instance = json.loads((first.state_dir / "state.json").read_text())["instance"]
    sh(netns, "ip", "link", "set", "br-leak", "alias", f"vxlan-evt net={'9' * 64} inst={instance}")
    sh(netns, "ip", "link", "add", "br-foreign", "type", "bridge")

    second = DaemonProcess(netns, tmp_path).start()
    try:
        links = sh(netns, "ip", "-o", "link")
        assert "vx-42" in links and "br-leak" not in links and "br-foreign" in links
        assert sh(netns, "cat", "/sys/class/net/br-42/ifindex") == bridge_index
        assert "master br-42" in sh(netns, "ip", "link", "show", "vx-42")
        # A new container can still join after the restart; delete still cleans up.
        second.ok(
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": NET, "EndpointID": "c" * 64, "Interface": {"Address": "10.42.0.8/24"}},
        )
        second.ok("NetworkDriver.DeleteNetwork", {"NetworkID": NET})
        assert "vxlan-evt" not in sh(netns, "ip", "-d", "-o", "link")
    finally:
        assert second.stop() == 0


def test_a_second_daemon_on_another_state_dir_deletes_nothing_of_the_first(
    daemon: DaemonProcess, netns: str, tmp_path: Path
) -> None:
    assert create_network(daemon, VtepDev="eth1")[0] == 200

    def marked() -> list[str]:
        return re.findall(r"alias (vxlan-evt [^\\]*)", sh(netns, "ip", "-d", "-o", "link"))

    before = marked()
    assert len(before) == 2 and all(" inst=" in alias for alias in before)
    (tmp_path / "mistyped").mkdir()
    other = DaemonProcess(netns, tmp_path / "mistyped").start()
    try:
        assert marked() == before
        assert "left alone: 2 links marked by vxlan-evt" in other.log()
    finally:
        assert other.stop() == 0


def test_a_restart_with_nothing_changed_plans_nothing(netns: str, tmp_path: Path) -> None:
    first = DaemonProcess(netns, tmp_path).start()
    try:
        assert create_network(first, VtepDev="eth1")[0] == 200
        first.ok(
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "10.42.0.7/24"}},
        )
    finally:
        first.stop(signal.SIGKILL)
    second = DaemonProcess(netns, tmp_path).start()
    try:
        assert "reconciled networks=1 degraded=0 endpoints=1 actions=0" in second.log()
    finally:
        assert second.stop() == 0


def test_a_recreated_bridge_gets_its_ports_back(netns: str, tmp_path: Path) -> None:
    first = DaemonProcess(netns, tmp_path).start()
    try:
        assert create_network(first, VtepDev="eth1")[0] == 200
        first.ok(
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "10.42.0.7/24"}},
        )
    finally:
        first.stop(signal.SIGKILL)
    sh(netns, "ip", "link", "del", "br-42")  # the ports stay, masterless
    second = DaemonProcess(netns, tmp_path).start()
    try:
        assert "master br-42" in sh(netns, "ip", "link", "show", "vx-42")
        assert "master br-42" in sh(netns, "ip", "link", "show", "vh" + EP[:11])
        assert "inet 10.42.0.254/24" in sh(netns, "ip", "addr", "show", "br-42")
    finally:
        assert second.stop() == 0


def test_a_foreign_link_of_our_name_degrades_only_its_network(netns: str, tmp_path: Path) -> None:
    """Before: the foreign bridge got our vxlan enslaved and the gateway added."""
    first = DaemonProcess(netns, tmp_path).start()
    try:
        assert create_network(first, VtepDev="eth1")[0] == 200
    finally:
        first.stop(signal.SIGKILL)
    sh(netns, "ip", "link", "del", "br-42")
    sh(netns, "ip", "link", "del", "vx-42")
    sh(netns, "ip", "link", "add", "br-42", "type", "bridge")  # someone else's now
    second = DaemonProcess(netns, tmp_path).start()
    try:
        assert "vx-42" not in sh(netns, "ip", "-o", "link")
        assert "inet " not in sh(netns, "ip", "addr", "show", "br-42")
        (network,) = second.get("networks")
        assert "a link named 'br-42' already exists" in network["degraded"]
    finally:
        assert second.stop() == 0


def test_a_late_vtep_device_degrades_its_network_until_it_appears(
    netns: str, tmp_path: Path
) -> None:
    """Boot order: the daemon starts before eth2 exists. The other network is served, the
    late one reports why it is not, and is repaired when eth2 appears (no restart)."""
    sh(netns, "ip", "link", "add", "eth2", "type", "veth", "peer", "eth2p")
    first = DaemonProcess(netns, tmp_path).start()
    other = "f" * 64
    try:
        assert create_network(first, VtepDev="eth1")[0] == 200
        status, document = first.call(
            "NetworkDriver.CreateNetwork",
            {
                "NetworkID": other,
                "Options": {"com.docker.network.generic": {"VxlanId": "43", "VtepDev": "eth2"}},
                "IPv4Data": [{"Pool": "10.43.0.0/24", "Gateway": "10.43.0.254/24"}],
            },
        )
        assert status == 200, document
    finally:
        first.stop(signal.SIGKILL)
    sh(netns, "ip", "link", "del", "eth2")  # takes vx-43 with it (its lower device)
    assert "vx-43" not in sh(netns, "ip", "-o", "link")
    second = DaemonProcess(netns, tmp_path).start()
    try:
        degraded = {n["network_id"]: n["degraded"] for n in second.get("networks")}
        assert degraded[NET] is None
        assert degraded[other] == "VtepDev: there is no device 'eth2' on this host (yet)"
        status, document = second.call(
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": other, "EndpointID": EP, "Interface": {"Address": "10.43.0.7/24"}},
        )
        assert status == 500 and "is degraded on this host" in document["Err"]
        second.ok(
            "NetworkDriver.CreateEndpoint",
            {"NetworkID": NET, "EndpointID": EP, "Interface": {"Address": "10.42.0.7/24"}},
        )
        doctor = second.cli("doctor", check=False)
        assert doctor.returncode == 1 and "could not rebuild this network" in doctor.stdout

        sh(netns, "ip", "link", "add", "eth2", "type", "veth", "peer", "eth2p")
        repaired = wait_for(
            lambda: all(n["degraded"] is None for n in second.get("networks")), timeout=10
        )
        assert repaired, second.log()
        assert "master br-43" in sh(netns, "ip", "-d", "link", "show", "vx-43")
        assert "network repaired network=ffffffffffff vni=43" in second.log()
    finally:
        assert second.stop() == 0


def test_sigterm_exits_cleanly_and_removes_the_socket(daemon: DaemonProcess) -> None:
    assert oct(daemon.socket.stat().st_mode & 0o777) == "0o600"
    assert daemon.stop(signal.SIGTERM) == 0
    assert not daemon.socket.exists()
    assert "stopped" in daemon.log()
