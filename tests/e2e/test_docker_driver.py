"""vxlan-evt driven by a real, isolated dockerd: the seed's walkthrough on one host."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from vxlan_evt.testing.busybox import BUSYBOX_IMAGE, busybox_image
from vxlan_evt.testing.fabric import Fabric
from vxlan_evt.testing.plugin_host import PluginHost, assert_ping

if TYPE_CHECKING:
    from tests.fixtures.plugin import LabFactory

pytestmark = [pytest.mark.docker, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
WALKTHROUGH = [
    "network", "create", "-d", "vxlan",
    "-o", "Group=239.1.1.1", "-o", "VxlanId=42", "-o", "VtepDev=eth1",
    "--subnet=10.42.0.0/24", "--gateway=10.42.0.254", "vxlan42",
]  # fmt: skip


@pytest.fixture
def plugin_host(
    lab_factory: LabFactory, lab_fabric: Fabric, busybox_tar: Path, tmp_path: Path
) -> Iterator[PluginHost]:
    host = lab_factory("h1")
    lab_fabric.attach(host)  # eth1, MTU 1500, the VtepDev of the walkthrough
    busybox_image(host, busybox_tar)
    plugin = PluginHost(host, tmp_path / "plugin.log", tmp_path / "state")
    plugin.start()
    try:
        yield plugin
    finally:
        if plugin.process is not None:
            plugin.stop()
        print(plugin.log())


def run_container(plugin: PluginHost, name: str) -> str:
    plugin.host.docker(
        "run", "-d", "--name", name, "--net", "vxlan42", BUSYBOX_IMAGE, "sleep", "3600"
    )
    return plugin.container_ip(name)


def ping(plugin: PluginHost, container: str, address: str) -> None:
    assert_ping(plugin.host, container, address)


def test_walkthrough_on_one_host(plugin_host: PluginHost) -> None:
    docker = plugin_host.host.docker
    docker(*WALKTHROUGH)
    first = run_container(plugin_host, "c1")
    second = run_container(plugin_host, "c2")
    assert first != second and first.startswith("10.42.0.")

    ping(plugin_host, "c1", second)
    ping(plugin_host, "c2", first)
    # Local scope: the gateway is on the bridge, so the host reaches containers ...
    host_ping = plugin_host.host.run(["ping", "-c", "2", "-W", "2", first], check=False)
    assert host_ping.returncode == 0, host_ping.stdout
    # ... and containers route through it.
    routes = docker("exec", "c1", "ip", "route").stdout
    assert "default via 10.42.0.254" in routes
    # MTU: 1500 underlay - 50 bytes of VXLAN; Docker never sets it, we do.
    assert docker("exec", "c1", "cat", "/sys/class/net/eth0/mtu").stdout.strip() == "1450"
    vxlan = plugin_host.host.run(["ip", "-d", "link", "show", "vx-42"]).stdout
    assert "vxlan id 42 group 239.1.1.1 dev eth1" in vxlan

    docker("rm", "-f", "c1", "c2")
    docker("network", "rm", "vxlan42")
    assert plugin_host.owned_links() == []


def test_bad_options_are_refused_with_our_message(plugin_host: PluginHost) -> None:
    result = plugin_host.host.docker(
        "network", "create", "-d", "vxlan", "-o", "VxlanId=abc", "-o", "vxlanMtu=1400", "bad",
        check=False,
    )  # fmt: skip
    assert result.returncode != 0
    assert 'VxlanId: "abc" is not an integer' in result.stderr
    assert 'did you mean "vxlanMTU"' in result.stderr
    result = plugin_host.host.docker(
        "network", "create", "-d", "vxlan", "-o", "VxlanId=7", "-o", "VtepDev=eth9", "bad",
        check=False,
    )  # fmt: skip
    assert "VtepDev: there is no device 'eth9'" in result.stderr
    assert "bad" not in plugin_host.host.docker("network", "ls").stdout
    assert plugin_host.owned_links() == []


def test_plugin_restart_keeps_working(plugin_host: PluginHost) -> None:
    docker = plugin_host.host.docker
    docker(*WALKTHROUGH)
    first = run_container(plugin_host, "c1")
    assert plugin_host.stop() == 0
    vx_index = plugin_host.host.run(["cat", "/sys/class/net/vx-42/ifindex"]).stdout
    plugin_host.start()
    # Docker never replays CreateNetwork: a new container still joins, traffic still flows.
    second = run_container(plugin_host, "c2")
    ping(plugin_host, "c2", first)
    assert plugin_host.host.run(["cat", "/sys/class/net/vx-42/ifindex"]).stdout == vx_index
    docker("rm", "-f", "c1", "c2")
    docker("network", "rm", "vxlan42")
    assert plugin_host.owned_links() == []
    assert re.match(r"10\.42\.0\.\d+", second)


@pytest.fixture
def global_plugin_host(
    lab_factory: LabFactory, lab_fabric: Fabric, busybox_tar: Path, tmp_path: Path
) -> Iterator[PluginHost]:
    host = lab_factory("g1")
    lab_fabric.attach(host)
    busybox_image(host, busybox_tar)
    plugin = PluginHost(host, tmp_path / "plugin.log", tmp_path / "state")
    plugin.start("-scope", "global")  # the seed's spelling
    try:
        yield plugin
    finally:
        if plugin.process is not None:
            plugin.stop()


def test_global_scope_keeps_the_gateway_off_the_host(global_plugin_host: PluginHost) -> None:
    plugin = global_plugin_host
    plugin.host.docker(*WALKTHROUGH)
    run_container(plugin, "c1")
    assert "10.42.0.254" not in plugin.host.run(["ip", "addr", "show", "br-42"]).stdout
    routes = plugin.host.docker("exec", "c1", "ip", "route").stdout
    assert "default via 10.42.0.254" in routes
    plugin.host.docker("rm", "-f", "c1")
    plugin.host.docker("network", "rm", "vxlan42")
    assert plugin.owned_links() == []


def test_our_ipam_driver_allocates_from_the_ip_range(plugin_host: PluginHost) -> None:
    docker = plugin_host.host.docker
    docker(
        "network", "create", "-d", "vxlan", "--ipam-driver", "vxlan",
        "-o", "VxlanId=43", "-o", "VtepDev=eth1",
        "--subnet=10.43.0.0/24", "--ip-range=10.43.0.64/28", "--gateway=10.43.0.1", "vxlan43",
    )  # fmt: skip
    for name in ("i1", "i2"):
        docker("run", "-d", "--name", name, "--net", "vxlan43", BUSYBOX_IMAGE, "sleep", "3600")
    addresses = []
    for name in ("i1", "i2"):
        networks = json.loads(docker("inspect", name).stdout)[0]["NetworkSettings"]["Networks"]
        addresses.append(networks["vxlan43"]["IPAddress"])
    assert addresses == ["10.43.0.64", "10.43.0.65"]
    ping(plugin_host, "i1", addresses[1])
    docker("rm", "-f", "i1", "i2")
    docker("network", "rm", "vxlan43")
    assert plugin_host.owned_links() == []
