"""Swarm services on vxlan-evt (the seed's one user issue): two lab hosts in a real swarm,
the managed plugin on both, a swarm-scope network made from per-node config-only networks
(`--config-from`, the macvlan way), a service with a task on each node, tasks that ping
each other across hosts, and a standalone container on the attachable network.

Two ways to keep the tasks' addresses apart (swarm leaves address allocation to every
node for a local-scope driver): each node's config-only network hands out its own
`--ip-range` (peers found by a multicast Group), or vxlan-evt's IPAM and peers go
through etcd (one subnet, no Group: unicast VXLAN, entries from etcd)."""

from __future__ import annotations

import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.fixtures.plugin import require
from vxlan_evt.testing.busybox import BUSYBOX_IMAGE, busybox_image
from vxlan_evt.testing.etcd import EtcdServer, find_etcd
from vxlan_evt.testing.fabric import Fabric
from vxlan_evt.testing.image import enable_managed_plugin
from vxlan_evt.testing.lab import LabHost
from vxlan_evt.testing.plugin_host import container_ip, owned_links
from vxlan_evt.testing.swarm import (
    form_swarm,
    running_tasks,
    task_container,
    wait_until,
)

if TYPE_CHECKING:
    from tests.fixtures.plugin import LabFactory

pytestmark = [pytest.mark.docker, pytest.mark.root]

PLUGIN = "vxlan-evt:lab"
STUB_PLUGIN = Path(__file__).resolve().parents[2] / "vxlan_evt" / "testing" / "stub_plugin.py"
# Each node's config-only network hands out its own half of the subnet: with a local-scope
# driver, swarm leaves address allocation to every node (see the README's Swarm section).
IP_RANGES = ("10.42.0.0/25", "10.42.0.128/25")


@dataclass
class Swarm:
    manager: LabHost
    worker: LabHost

    @property
    def hosts(self) -> tuple[LabHost, LabHost]:
        return self.manager, self.worker


@dataclass
class SwarmRig:
    """Builds the two-node swarm once the test has said how its plugins are set."""

    lab_factory: LabFactory
    fabric: Fabric
    busybox_tar: Path
    image: Path
    tmp_path: Path

    def __call__(self, *settings: str) -> Swarm:
        hosts = [self.lab_factory("a"), self.lab_factory("b")]
        for host in hosts:
            self.fabric.attach(host)
            busybox_image(host, self.busybox_tar)
            enable_managed_plugin(
                host, self.image, PLUGIN, self.tmp_path / f"state-{host.name}",
                "VXLAN_EVT_SCOPE=global",  # connectivity scope global: swarm accepts it
                f"VXLAN_EVT_HOSTNAME={host.name}",  # lab hosts share the machine's hostname
                f"VXLAN_EVT_ADVERTISE_ADDRESS={self.fabric.address_of(host)}",  # our VTEP
                *settings,
            )  # fmt: skip
        return Swarm(form_swarm(hosts, self.fabric), hosts[1])


@pytest.fixture
def swarm_rig(
    lab_factory: LabFactory, lab_fabric: Fabric, busybox_tar: Path, vxlan_evt_image: Path,
    tmp_path: Path,
) -> SwarmRig:  # fmt: skip
    return SwarmRig(lab_factory, lab_fabric, busybox_tar, vxlan_evt_image, tmp_path)


@pytest.fixture
def fabric_etcd(lab_fabric: Fabric, tmp_path: Path) -> Iterator[EtcdServer]:
    """A real etcd on the fabric switch's own address, reachable from every lab host."""
    binary = find_etcd()
    if binary is None:
        require(["etcd binary not found (apt-get install etcd-server)"])
        raise AssertionError("unreachable")
    (tmp_path / "etcd").mkdir()
    etcd = EtcdServer(
        binary, tmp_path / "etcd", netns=lab_fabric.netns, address=lab_fabric.bridge_address(),
        client_port=2379,
    )  # fmt: skip
    try:
        etcd.start()
        yield etcd
    finally:
        etcd.close()


def can_ping(host: LabHost, container: str, address: str) -> bool:
    ping = host.docker("exec", container, "ping", "-c", "1", "-W", "1", address, check=False)
    return ping.returncode == 0


def test_a_service_gets_a_task_on_each_node_and_the_tasks_ping(swarm_rig: SwarmRig) -> None:
    swarm = swarm_rig()
    for host, ip_range in zip(swarm.hosts, IP_RANGES, strict=True):
        host.docker(
            "network", "create", "--config-only",
            "-o", "VxlanId=42", "-o", "Group=239.1.1.1", "-o", "VtepDev=eth1",
            "--subnet", "10.42.0.0/24", "--gateway", "10.42.0.254", "--ip-range", ip_range,
            "cfg42",
        )  # fmt: skip
    pinging_service_across_hosts(swarm)


def test_with_etcd_one_subnet_serves_every_node(
    swarm_rig: SwarmRig, fabric_etcd: EtcdServer
) -> None:
    """Our IPAM over etcd keeps the nodes' addresses apart, and etcd carries the peers."""
    swarm = swarm_rig(f"VXLAN_EVT_ETCD={fabric_etcd.url}")
    for host in swarm.hosts:
        host.docker(
            "network", "create", "--config-only", "--ipam-driver", PLUGIN,
            "-o", "VxlanId=42", "-o", "VtepDev=eth1", "--subnet", "10.42.0.0/24", "cfg42",
        )  # fmt: skip
    pinging_service_across_hosts(swarm)


def pinging_service_across_hosts(swarm: Swarm) -> None:
    """Swarm network from cfg42, a 2-task service (one per node), pings both ways, a
    standalone container on the attachable network, then everything removed again."""
    manager = swarm.manager
    manager.docker(
        "network", "create", "-d", PLUGIN, "--scope", "swarm", "--config-from", "cfg42",
        "--attachable", "net42",
    )  # fmt: skip
    started = time.monotonic()
    manager.docker(
        "service", "create", "--detach", "--no-resolve-image", "--name", "pinger",
        "--network", "net42", "--replicas", "2", "--replicas-max-per-node", "1",
        "--endpoint-mode", "dnsrr", BUSYBOX_IMAGE, "sleep", "3600",
    )  # fmt: skip
    wait_until(lambda: len(running_tasks(manager, "pinger")) == 2, "2 running tasks", 90)
    tasks = {host.name: task_container(host, "pinger") for host in swarm.hosts}
    addresses = {name: container_ip(host, tasks[name], "net42") for name, host in
                 zip(tasks, swarm.hosts, strict=True)}  # fmt: skip
    a, b = swarm.hosts
    assert addresses["a"] != addresses["b"]
    wait_until(lambda: can_ping(a, tasks["a"], addresses["b"]), "ping a -> b", 30)
    wait_until(lambda: can_ping(b, tasks["b"], addresses["a"]), "ping b -> a", 30)
    print(f"docker service create -> both tasks ping: {time.monotonic() - started:.1f} s")

    # A standalone container joins the attachable network on the worker.
    b.docker("run", "-d", "--name", "solo", "--network", "net42", BUSYBOX_IMAGE, "sleep", "600")
    solo = container_ip(b, "solo", "net42")
    assert solo not in addresses.values()
    wait_until(lambda: can_ping(a, tasks["a"], solo), "ping a's task -> standalone on b", 30)

    b.docker("rm", "-f", "solo")
    manager.docker("service", "rm", "pinger")
    for host in swarm.hosts:
        wait_until(partial(no_containers, host), f"no containers left on {host.name}", 60)
    manager.docker("network", "rm", "net42")
    for host in swarm.hosts:
        wait_until(partial(no_links_of_ours, host), f"no links of ours on {host.name}", 30)


def no_containers(host: LabHost) -> bool:
    return not host.docker("ps", "-q").stdout.strip()


def no_links_of_ours(host: LabHost) -> bool:
    return owned_links(host) == []


def test_docker_20_10_refuses_a_global_scope_driver_outside_swarm(
    lab_factory: LabFactory, tmp_path: Path
) -> None:
    """Why vxlan-evt does not report `Scope: global` (the AllocateNetwork shape): the same
    plugin could then not serve a host outside swarm. Reproduced with a stub driver."""
    host = lab_factory("h1")
    log = tmp_path / "stub.log"
    stub = host.spawn(
        [sys.executable, str(STUB_PLUGIN), "/run/docker/plugins/gstub.sock", "global"], log
    )
    host.wait_for_plugin("gstub", proc=stub, log_path=log)
    refused = host.docker("network", "create", "-d", "gstub", "n1", check=False)
    assert refused.returncode != 0
    assert "This node is not a swarm manager" in refused.stderr, refused.stderr
    assert host.stop_process(stub) == 0
