"""The container image, run as the README says, is the plugin of a real, isolated dockerd."""

from __future__ import annotations

from pathlib import Path

import pytest

from vxlan_evt import __version__
from vxlan_evt.testing.busybox import BUSYBOX_IMAGE
from vxlan_evt.testing.image import PLUGIN_CONTAINER, load_image, run_plugin_container
from vxlan_evt.testing.lab import LabHost
from vxlan_evt.testing.plugin_host import assert_ping, container_ip, owned_links

pytestmark = [pytest.mark.docker, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]


def test_the_image_is_the_plugin_of_a_real_dockerd(
    fabric_host: LabHost, vxlan_evt_image: Path, tmp_path: Path
) -> None:
    host = fabric_host
    tag = load_image(host, vxlan_evt_image)
    version = host.docker("run", "--rm", tag, "--version").stdout.strip()
    assert version == f"vxlan-evt {__version__}"

    run_plugin_container(host, tag, tmp_path / "state")
    try:
        host.wait_for_plugin(timeout=30)
    except Exception:
        print(host.docker("logs", PLUGIN_CONTAINER, check=False).stderr)
        raise
    docker = host.docker
    docker(
        "network", "create", "-d", "vxlan", "-o", "VxlanId=42", "-o", "VtepDev=eth1",
        "--subnet=10.42.0.0/24", "--gateway=10.42.0.254", "vxlan42",
    )  # fmt: skip
    for name in ("c1", "c2"):
        docker("run", "-d", "--name", name, "--net", "vxlan42", BUSYBOX_IMAGE, "sleep", "3600")
    first, second = container_ip(host, "c1"), container_ip(host, "c2")
    assert_ping(host, "c1", second)
    assert_ping(host, "c2", first)
    assert (tmp_path / "state" / "state.json").exists(), "the state lands in the mounted dir"

    # The CLI in the container, and on the host through the mounted /run/vxlan-evt/api.sock
    # (the CLI's default socket there).
    inside = docker("exec", PLUGIN_CONTAINER, "vxlan-evt", "networks").stdout
    assert "vx-42" in inside and "br-42" in inside
    on_the_host = host.run([str(REPO / ".venv/bin/vxlan-evt"), "endpoints"]).stdout
    assert first in on_the_host and second in on_the_host

    docker("rm", "-f", "c1", "c2")
    docker("network", "rm", "vxlan42")
    assert owned_links(host) == []
    docker("rm", "-f", PLUGIN_CONTAINER)
