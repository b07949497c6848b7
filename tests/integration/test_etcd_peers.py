"""Peers through a real etcd: two netns hosts, each with its own daemon.

etcd runs inside host A's namespace on its underlay address, so daemon B
reaches it over the underlay like a real cluster member would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.plugin import require
from vxlan_evt.testing.daemon import NETWORK_ID, DaemonProcess, join_container, wait_for
from vxlan_evt.testing.etcd import EtcdServer, find_etcd
from vxlan_evt.testing.netns import VxlanHost, add_underlay, namespaces

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces and links"),
]

LEASE_TTL = 3


class NetnsEtcd(EtcdServer):
    """etcd inside a network namespace, listening on one of its addresses."""

    def __init__(self, netns: str, address: str) -> None:
        super().__init__(binary=find_etcd() or "etcd")
        self.netns, self.address = netns, address

    @property
    def url(self) -> str:
        return f"http://{self.address}:{self.client_port}"

    def command(self) -> list[str]:
        return ["ip", "netns", "exec", self.netns, *super().command()]

    def healthy(self) -> bool:
        probe = subprocess.run(
            ["ip", "netns", "exec", self.netns, "etcdctl", f"--endpoints={self.url}",
             "--dial-timeout=1s", "endpoint", "health"],
            capture_output=True, text=True, env={**os.environ, "ETCDCTL_API": "3"},
        )  # fmt: skip
        return probe.returncode == 0


def network_request(host: VxlanHost) -> dict[str, object]:
    return {
        "NetworkID": NETWORK_ID,
        "Options": {
            "com.docker.network.generic": {
                "VxlanId": "42",
                "VtepDev": "ul0",
                "SrcAddr": host.underlay_ip,
                "L3miss": "true",
                "L2miss": "true",
                "Proxy": "true",
                "Learning": "false",
            }
        },
        "IPv4Data": [{"Pool": "192.168.42.0/24", "Gateway": "192.168.42.254/24"}],
    }


class Cluster:
    def __init__(self, hosts: list[VxlanHost], etcd: NetnsEtcd, tmp_path: Path) -> None:
        self.hosts, self.etcd, self.tmp_path = hosts, etcd, tmp_path
        self.daemons: list[DaemonProcess] = []

    def start_daemon(self, host: VxlanHost) -> DaemonProcess:
        workdir = self.tmp_path / f"d{host.n}"
        workdir.mkdir(exist_ok=True)
        daemon = DaemonProcess(
            host.host.name, workdir,
            "--etcd", self.etcd.url, "--hostname", f"host{host.n}",
            "--etcd-lease-ttl", str(LEASE_TTL),
        ).start()  # fmt: skip
        self.daemons.append(daemon)
        return daemon

    def fdb(self, host: VxlanHost) -> str:
        return host.host.bridge("fdb", "show", "dev", "vx-42")


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    if find_etcd() is None:
        require(["etcd binary (apt-get install etcd-server)"])
    with namespaces("ea", "eca", "eb", "ecb") as (ha, ca, hb, cb):
        a, b = VxlanHost(ha, ca, 1, 42), VxlanHost(hb, cb, 2, 42)
        add_underlay(a, b)
        etcd = NetnsEtcd(ha.name, a.underlay_ip)
        etcd.start()
        cluster = Cluster([a, b], etcd, tmp_path)
        try:
            for host in (a, b):
                daemon = cluster.start_daemon(host)
                daemon.ok("NetworkDriver.CreateNetwork", network_request(host))
                join_container(host, daemon, f"{host.n}" * 64)
            yield cluster
        finally:
            for daemon in cluster.daemons:
                daemon.stop(signal.SIGKILL)
            etcd.close()


def programmed(cluster: Cluster, on: VxlanHost, of: VxlanHost) -> bool:
    return f"{of.container_mac} dst {of.underlay_ip} self permanent" in cluster.fdb(on)


def test_endpoints_travel_through_etcd_and_the_first_ping_is_fast(cluster: Cluster) -> None:
    a, b = cluster.hosts
    assert wait_for(lambda: programmed(cluster, a, b) and programmed(cluster, b, a), timeout=15)
    assert f"{b.container_ip} lladdr {b.container_mac} PERMANENT" in a.host.ip(
        "neigh", "show", "dev", "vx-42"
    )
    ping = subprocess.run(
        ["ip", "netns", "exec", a.container.name, "ping", "-c", "1", "-W", "2", b.container_ip],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ping.returncode == 0, ping.stdout
    peers = cluster.daemons[0].get("peers")
    assert {p["host"] for p in peers} == {"host1", "host2"}


def test_a_removed_endpoint_leaves_every_host(cluster: Cluster) -> None:
    a, b = cluster.hosts
    assert wait_for(lambda: programmed(cluster, b, a), timeout=15)
    cluster.daemons[0].ok("NetworkDriver.Leave", {"NetworkID": NETWORK_ID, "EndpointID": "1" * 64})
    cluster.daemons[0].ok(
        "NetworkDriver.DeleteEndpoint", {"NetworkID": NETWORK_ID, "EndpointID": "1" * 64}
    )
    assert wait_for(lambda: not programmed(cluster, b, a), timeout=15), cluster.fdb(b)


def test_a_host_joins_the_segment_with_an_address_on_its_bridge(cluster: Cluster) -> None:
    a, b = cluster.hosts
    daemon_a, daemon_b = cluster.daemons
    bridge_mac = json.loads(b.host.ip("-j", "link", "show", "br-42"))[0]["address"]
    b.host.ip("addr", "add", "192.168.42.200/24", "dev", "br-42")
    member = f"{bridge_mac} dst {b.underlay_ip} self permanent"
    assert wait_for(lambda: member in cluster.fdb(a), timeout=15), cluster.fdb(a) + daemon_b.log()
    neigh = a.host.ip("neigh", "show", "dev", "vx-42")
    assert f"192.168.42.200 lladdr {bridge_mac} PERMANENT" in neigh
    # The gateway both hosts hold (local scope) is not published: it is everybody's.
    assert "192.168.42.254" not in neigh
    ping = subprocess.run(
        ["ip", "netns", "exec", a.container.name, "ping", "-c", "1", "-W", "2", "192.168.42.200"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ping.returncode == 0, ping.stdout + daemon_a.log()
    assert any(e["ip"] == "192.168.42.200" for e in daemon_b.get("events", type="addr"))

    b.host.ip("addr", "del", "192.168.42.200/24", "dev", "br-42")
    assert wait_for(lambda: member not in cluster.fdb(a), timeout=15), cluster.fdb(a)


def test_a_dead_host_disappears_after_its_lease(cluster: Cluster) -> None:
    a, b = cluster.hosts
    assert wait_for(lambda: programmed(cluster, b, a), timeout=15)
    cluster.daemons[0].stop(signal.SIGKILL)
    killed = time.monotonic()
    assert wait_for(lambda: not programmed(cluster, b, a), timeout=LEASE_TTL * 4)
    print(f"dead host's entries gone after {time.monotonic() - killed:.1f} s (TTL {LEASE_TTL} s)")


def test_etcd_down_keeps_traffic_and_converges_after(cluster: Cluster) -> None:
    a, b = cluster.hosts
    assert wait_for(lambda: programmed(cluster, a, b), timeout=15)
    cluster.etcd.stop()
    time.sleep(LEASE_TTL)  # long enough for keepalives to fail
    assert programmed(cluster, a, b)  # the datapath keeps what it had
    ping = subprocess.run(
        ["ip", "netns", "exec", a.container.name, "ping", "-c", "1", "-W", "2", b.container_ip],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ping.returncode == 0
    # Meanwhile host B gets a new endpoint; once etcd is back, A learns it.
    b.container.ip("addr", "add", "192.168.42.12/24", "dev", "eth0")
    cluster.daemons[1].ok(
        "NetworkDriver.CreateEndpoint",
        {"NetworkID": NETWORK_ID, "EndpointID": "7" * 64,
         "Interface": {"Address": "192.168.42.12/24", "MacAddress": "02:42:c0:a8:2a:0c"}},
    )  # fmt: skip
    cluster.etcd.start()
    assert wait_for(
        lambda: "02:42:c0:a8:2a:0c dst 10.99.0.2 self permanent" in cluster.fdb(a), timeout=30
    ), cluster.fdb(a) + cluster.daemons[0].log()


def etcd_keys(cluster: Cluster, prefix: str) -> list[str]:
    etcd = cluster.etcd
    listing = subprocess.run(
        ["ip", "netns", "exec", etcd.netns, "etcdctl", f"--endpoints={etcd.url}",
         "get", "--prefix", "--keys-only", prefix],
        capture_output=True, text=True, check=True, env={**os.environ, "ETCDCTL_API": "3"},
    )  # fmt: skip
    return [line for line in listing.stdout.splitlines() if line]


def test_same_vni_with_other_settings_on_another_host_is_refused(cluster: Cluster) -> None:
    a, b = cluster.hosts
    daemon_a, daemon_b = cluster.daemons
    other = "7" * 64

    def request(host: VxlanHost, pool: str, **options: str) -> dict[str, object]:
        generic = {"VxlanId": "77", "VtepDev": "ul0", "SrcAddr": host.underlay_ip, **options}
        return {
            "NetworkID": other,
            "Options": {"com.docker.network.generic": generic},
            "IPv4Data": [{"Pool": pool, "Gateway": pool.replace(".0/24", ".254/24")}],
        }

    daemon_a.ok("NetworkDriver.CreateNetwork", request(a, "10.77.0.0/24", Port="4790"))
    key = "/vxlan-evt/v1/networks/77/host1"
    assert wait_for(lambda: key in etcd_keys(cluster, "/vxlan-evt/v1/networks/")), daemon_a.log()

    status, document = daemon_b.call(
        "NetworkDriver.CreateNetwork", request(b, "10.78.0.0/24", Group="239.1.1.77")
    )
    assert status != 200, document
    message = document["Err"]
    assert "VxlanId 77 is already used on host host1" in message, message
    assert "Group=239.1.1.77 here but (unicast) there" in message
    assert "Port=4789 here but 4790 there" in message
    assert "subnet 10.78.0.0/24 here but 10.77.0.0/24 there" in message
    assert "vx-77" not in b.host.ip("-o", "link", "show")  # nothing half-created

    # The same settings are welcome (host-local ones such as SrcAddr may differ).
    daemon_b.ok("NetworkDriver.CreateNetwork", request(b, "10.77.0.0/24", Port="4790"))
    daemon_b.ok("NetworkDriver.DeleteNetwork", {"NetworkID": other})
    # Once nobody uses VNI 77 it is free for other settings again.
    daemon_a.ok("NetworkDriver.DeleteNetwork", {"NetworkID": other})
    assert wait_for(lambda: not etcd_keys(cluster, "/vxlan-evt/v1/networks/77/"))
    daemon_b.ok("NetworkDriver.CreateNetwork", request(b, "10.78.0.0/24", Group="239.1.1.77"))


def etcd_put(cluster: Cluster, key: str, value: str) -> None:
    etcd = cluster.etcd
    subprocess.run(
        ["ip", "netns", "exec", etcd.netns, "etcdctl", f"--endpoints={etcd.url}", "put", key],
        input=value, capture_output=True, text=True, check=True,
        env={**os.environ, "ETCDCTL_API": "3"},
    )  # fmt: skip


def test_hostile_records_are_skipped_and_the_daemon_keeps_syncing(cluster: Cluster) -> None:
    """Anyone who can write to etcd: records that would misdirect the segment (a loopback
    or unspecified VTEP, the flood MAC, another host's name, JSON nested past the parser's
    limit, a networks/ record of the wrong shape) are logged and skipped; the watch goes
    on, so the next good record is programmed; CreateNetwork is never a 500."""
    a, b = cluster.hosts
    daemon_a, daemon_b = cluster.daemons
    prefix = "/vxlan-evt/v1/"

    # host9's VTEP is an unused address of the lab's own underlay /24: nothing leaves it.
    def endpoint(n: int, **fields: str) -> str:
        document = {"ip": f"192.168.42.{n}", "mac": f"02:42:c0:a8:2a:{n:02x}",
                    "vtep": "10.99.0.9", "host": "host9", "container": f"c{n}", **fields}  # fmt: skip
        return json.dumps(document)

    hostile = {
        f"{prefix}endpoints/42/host9/c11/192.168.42.11": endpoint(11, vtep="127.0.0.1"),
        f"{prefix}endpoints/42/host9/c12/192.168.42.12": endpoint(12, vtep="0.0.0.0"),
        f"{prefix}endpoints/42/host9/c13/192.168.42.13": endpoint(13, mac="00:00:00:00:00:00"),
        f"{prefix}endpoints/42/host9/c14/192.168.42.14": endpoint(14, host="host1"),
        f"{prefix}endpoints/42/host9/c15/192.168.42.15": "[" * 20_000 + "]" * 20_000,
        f"{prefix}endpoints/42/host9/c16/192.168.42.16": '{"ip": 7}',
        f"{prefix}networks/78/host9": '{"settings": ["Port"], "subnets": 1}',
    }
    for key, value in hostile.items():
        etcd_put(cluster, key, value)
    good_key = f"{prefix}endpoints/42/host9/c17/192.168.42.17"
    etcd_put(cluster, good_key, endpoint(17))  # after the garbage: the watch must still run

    good_entry = "02:42:c0:a8:2a:11 dst 10.99.0.9 self permanent"  # 0x11: c17
    for daemon, host in ((daemon_a, a), (daemon_b, b)):
        assert wait_for(lambda h=host: good_entry in cluster.fdb(h)), daemon.log()  # type: ignore[misc]
        fdb = cluster.fdb(host)
        for n in (11, 12, 13, 14, 15, 16):
            assert f"02:42:c0:a8:2a:{n:02x}" not in fdb, (n, fdb)
        assert "dst 127.0.0.1" not in fdb and "dst 0.0.0.0" not in fdb
        peers = {p["ip"] for p in daemon.get("peers")}
        assert "192.168.42.17" in peers and not peers & {f"192.168.42.{n}" for n in range(11, 17)}
        log = daemon.log()
        for n in (11, 12, 13, 14, 15, 16):
            assert f"c{n}/192.168.42.{n}" in log, (n, log)
        assert "vtep 127.0.0.1 is a loopback address" in log
        assert "etcd unavailable" not in log and "failed unexpectedly" not in log
    # Programmed from host1 and host2's own endpoints all along: nothing else moved.
    assert programmed(cluster, a, b) and programmed(cluster, b, a)

    other = "8" * 64
    status, document = daemon_b.call("NetworkDriver.CreateNetwork", {
        "NetworkID": other,
        "Options": {"com.docker.network.generic": {
            "VxlanId": "78", "VtepDev": "ul0", "SrcAddr": b.underlay_ip}},
        "IPv4Data": [{"Pool": "10.78.0.0/24", "Gateway": "10.78.0.254/24"}],
    })  # fmt: skip
    assert status == 200, document
    assert "ignoring malformed etcd record '/vxlan-evt/v1/networks/78/host9'" in daemon_b.log()
    daemon_b.ok("NetworkDriver.DeleteNetwork", {"NetworkID": other})
