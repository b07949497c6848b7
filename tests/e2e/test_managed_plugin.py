"""The managed (v2) plugin: built from the image, created and enabled on a real, isolated
dockerd, both network and IPAM driver under the plugin's name, configured by its env."""

from __future__ import annotations

from pathlib import Path

import pytest

from vxlan_evt.testing.busybox import BUSYBOX_IMAGE
from vxlan_evt.testing.image import enable_managed_plugin
from vxlan_evt.testing.lab import LabHost
from vxlan_evt.testing.plugin_host import assert_ping, container_ip, owned_links

pytestmark = [pytest.mark.docker, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
PLUGIN = "vxlan-evt:lab"


def test_the_managed_plugin_serves_networks_and_ipam(
    fabric_host: LabHost, vxlan_evt_image: Path, tmp_path: Path
) -> None:
    host = fabric_host
    enable_seconds = enable_managed_plugin(
        host, vxlan_evt_image, PLUGIN, tmp_path / "state",
        "VXLAN_EVT_RESOLVE=on-demand", "VXLAN_EVT_DEBUG=true",
    )  # fmt: skip
    print(f"docker plugin enable took {enable_seconds:.2f} s")
    docker = host.docker
    plugin_id = docker("plugin", "inspect", PLUGIN, "--format", "{{.Id}}").stdout.strip()
    # Docker puts a managed plugin's socket in a directory named after its ID.
    assert (host.plugins_dir / plugin_id / "vxlan.sock").is_socket()

    docker(
        "network", "create", "-d", PLUGIN, "--ipam-driver", PLUGIN,
        "-o", "VxlanId=42", "-o", "VtepDev=eth1", "--subnet=10.42.0.0/24", "vxlan42",
    )  # fmt: skip
    for name in ("c1", "c2"):
        docker("run", "-d", "--name", name, "--net", "vxlan42", BUSYBOX_IMAGE, "sleep", "3600")
    first, second = container_ip(host, "c1"), container_ip(host, "c2")
    assert first.startswith("10.42.0.") and second.startswith("10.42.0.")
    assert_ping(host, "c1", second)
    assert_ping(host, "c2", first)

    # The observe API lands on the host's /run/vxlan-evt/api.sock: the CLI's default.
    cli = str(REPO / ".venv/bin/vxlan-evt")
    networks = host.run([cli, "networks"]).stdout
    assert "vx-42" in networks and "on-demand" in networks, networks  # the env reached serve
    assert first in host.run([cli, "endpoints"]).stdout
    assert (tmp_path / "state" / "state.json").exists()

    docker("rm", "-f", "c1", "c2")
    docker("network", "rm", "vxlan42")
    assert owned_links(host) == []
    docker("plugin", "disable", PLUGIN)
    docker("plugin", "rm", PLUGIN)
