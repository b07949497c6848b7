"""Several hosts, each with its own dockerd and vxlan-evt, on one fabric."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from vxlan_evt.testing.busybox import BUSYBOX_IMAGE, busybox_image
from vxlan_evt.testing.fabric import Fabric
from vxlan_evt.testing.plugin_host import PluginHost

if TYPE_CHECKING:
    from tests.fixtures.plugin import LabFactory

pytestmark = [pytest.mark.docker, pytest.mark.root]


def start_hosts(
    count: int, lab_factory: LabFactory, lab_fabric: Fabric, busybox_tar: Path, tmp_path: Path
) -> list[PluginHost]:
    hosts = []
    for n in range(1, count + 1):
        host = lab_factory(f"m{n}")
        lab_fabric.attach(host)
        busybox_image(host, busybox_tar)
        plugin = PluginHost(host, tmp_path / f"plugin{n}.log", tmp_path / f"state{n}")
        plugin.start()
        hosts.append(plugin)
    return hosts


def test_walkthrough_across_three_hosts_with_multicast(
    lab_factory: LabFactory, lab_fabric: Fabric, busybox_tar: Path, tmp_path: Path
) -> None:
    hosts = start_hosts(3, lab_factory, lab_fabric, busybox_tar, tmp_path)
    try:
        addresses = []
        for n, plugin in enumerate(hosts, start=1):
            plugin.host.docker(
                "network", "create", "-d", "vxlan",
                "-o", "Group=239.1.1.1", "-o", "VxlanId=42", "-o", "VtepDev=eth1",
                "--subnet=10.42.0.0/24", "--gateway=10.42.0.254",
                f"--ip-range=10.42.0.{n * 16}/28", "vxlan42",
            )  # fmt: skip
            plugin.host.docker(
                "run", "-d", "--name", f"c{n}", "--net", "vxlan42", BUSYBOX_IMAGE, "sleep", "3600"
            )
            addresses.append(plugin.container_ip(f"c{n}"))
        assert len(set(addresses)) == 3
        for n, plugin in enumerate(hosts, start=1):
            for target in addresses:
                result = plugin.host.docker(
                    "exec", f"c{n}", "ping", "-c", "2", "-W", "2", target, check=False
                )
                assert result.returncode == 0, f"c{n} -> {target}: {result.stdout}{plugin.log()}"
        networks = json.loads(hosts[1].host.docker("network", "inspect", "vxlan42").stdout)
        assert networks[0]["Driver"] == "vxlan"
    finally:
        for plugin in hosts:
            if plugin.process is not None:
                plugin.stop()
