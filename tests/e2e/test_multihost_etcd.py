"""Three hosts, each with its own dockerd and vxlan-evt, sharing peers (and IPAM) through etcd.

One etcd runs inside the fabric's own netns, on the switch's address (10.77.0.254), so every
lab host reaches it over its underlay `eth1`, as a cluster member would. The hosts, their
dockerds, the fabric and etcd are built once per module (~3 s); each test gets fresh
daemons (fresh state dirs, its own `--etcd-prefix`, so no key leaks from one test to the
next) and leaves no container, network or link behind.

The networks have no `Group`: unicast VXLAN whose peers come only from etcd, pre-programmed
as FDB + neighbour entries on every host before any packet is sent.
"""

from __future__ import annotations

import ipaddress
import json
import re
import signal
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

import pytest

from tests.fixtures.plugin import LabFactory, require
from vxlan_evt.testing.busybox import BUSYBOX_IMAGE, busybox_image
from vxlan_evt.testing.etcd import EtcdServer, find_etcd
from vxlan_evt.testing.fabric import Fabric
from vxlan_evt.testing.lab import LabHost
from vxlan_evt.testing.labsys import LabError, missing_prerequisites
from vxlan_evt.testing.plugin_host import PluginHost

pytestmark = [pytest.mark.docker, pytest.mark.root]

T = TypeVar("T")
R = TypeVar("R")

HOSTS = 3
LEASE_TTL = 3
ETCD_PORT = 2379
NETWORK, VNI, SUBNET = "vxlan42", 42, "10.42.0.0/24"
IPAM_NETWORK, IPAM_VNI, IPAM_SUBNET, IPAM_GATEWAY = "vxlan43", 43, "10.43.0.0/24", "10.43.0.1"
PROGRAM_TIMEOUT = 15.0  # entries of a new endpoint reach every host (measured: well under 1 s)
FIRST_PING_LIMIT_MS = 200.0  # an ARP retry would cost ~1000 ms
ZERO_MAC = "00:00:00:00:00:00"


def parallel(fn: Callable[[T], R], items: Iterable[T]) -> list[R]:
    """`fn` over `items` in threads (docker calls are mostly waiting); the first error wins."""
    todo = list(items)
    with ThreadPoolExecutor(max_workers=max(1, len(todo))) as pool:
        return list(pool.map(fn, todo))


def wait_for(
    what: str, predicate: Callable[[], bool], timeout: float, explain: Callable[[], str]
) -> float:
    """Poll `predicate` until true; returns the seconds it took, fails naming `what` if never."""
    start = time.monotonic()
    deadline = start + timeout
    while not predicate():
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not true after {timeout} s\n{explain()}", pytrace=False)
        time.sleep(0.05)
    return time.monotonic() - start


@dataclass(frozen=True)
class Endpoint:
    """A container as the other hosts must see it: its IP and MAC behind its host's VTEP."""

    container: str
    host: int  # index into Cluster.plugins
    ip: str
    mac: str
    vtep: str


@dataclass
class Lab:
    """Module-wide: the fabric with etcd on it, and three hosts running dockerd."""

    fabric: Fabric
    etcd: EtcdServer
    hosts: list[LabHost]
    broken: str | None = None  # why an earlier teardown left the hosts unusable


@dataclass
class Cluster:
    """One test's daemons on the lab's hosts; `plugins[0]` is host A (--hostname h1)."""

    lab: Lab
    prefix: str
    log_dir: Path
    plugins: list[PluginHost] = field(default_factory=list)

    def flags(self, n: int) -> list[str]:
        host = self.lab.hosts[n]
        return [
            "--etcd", self.lab.etcd.url, "--etcd-prefix", self.prefix,
            "--etcd-lease-ttl", str(LEASE_TTL),
            "--hostname", host.name, "--advertise-address", self.lab.fabric.address_of(host),
        ]  # fmt: skip

    def start_daemon(self, n: int) -> None:
        self.plugins[n].start(*self.flags(n))

    def kill_daemon(self, n: int) -> None:
        """SIGKILL: no goodbye to etcd, no cleanup; the lease is all that is left."""
        plugin = self.plugins[n]
        assert plugin.process is not None
        plugin.process.send_signal(signal.SIGKILL)
        plugin.host.stop_process(plugin.process)  # reaps it
        plugin.process = None

    def vtep(self, n: int) -> str:
        return self.lab.fabric.address_of(self.lab.hosts[n])

    def create_network(self, *, ipam: bool = False) -> None:
        """The same network on every host (in parallel): no Group, so peers only from etcd."""

        def create(n: int) -> None:
            if ipam:
                args = [
                    "--ipam-driver", "vxlan", "-o", f"VxlanId={IPAM_VNI}", "-o", "VtepDev=eth1",
                    f"--subnet={IPAM_SUBNET}", f"--gateway={IPAM_GATEWAY}", IPAM_NETWORK,
                ]  # fmt: skip
            else:  # Docker's own IPAM: one --ip-range per host keeps addresses apart
                args = [
                    "-o", f"VxlanId={VNI}", "-o", "VtepDev=eth1", f"--subnet={SUBNET}",
                    "--gateway=10.42.0.254", f"--ip-range=10.42.0.{(n + 1) * 16}/28", NETWORK,
                ]  # fmt: skip
            self.plugins[n].host.docker("network", "create", "-d", "vxlan", *args)

        parallel(create, range(HOSTS))

    def run(self, n: int, name: str, network: str = NETWORK) -> Endpoint:
        """`docker run -d` a sleeping busybox on host `n`; its IP (Docker's view) and MAC (eth0)."""
        host = self.plugins[n].host
        host.docker(
            "run", "-d", "--name", name, "--net", network, BUSYBOX_IMAGE, "sleep", "3600",
            timeout=120,
        )  # fmt: skip
        settings = json.loads(host.docker("inspect", name).stdout)[0]["NetworkSettings"]
        ip = str(settings["Networks"][network]["IPAddress"])
        mac = host.docker("exec", name, "cat", "/sys/class/net/eth0/address").stdout.strip()
        return Endpoint(name, n, ip, mac, self.vtep(n))

    def one_container_per_host(self) -> list[Endpoint]:
        return parallel(lambda n: self.run(n, f"c{n + 1}"), range(HOSTS))

    def remove(self, endpoint: Endpoint) -> None:
        self.plugins[endpoint.host].host.docker("rm", "-f", endpoint.container)

    # --- the kernel's view on one host ---------------------------------------------------

    def vxlan_link(self, n: int, vni: int = VNI) -> str:
        """The VXLAN link our driver made for `vni` on host `n` (found by its ifalias mark)."""
        out = self.plugins[n].host.run(["ip", "-d", "-o", "link"]).stdout
        for line in out.splitlines():
            if "vxlan-evt" in line and re.search(rf"\bvxlan id {vni}\b", line):
                return line.split(":")[1].strip().split("@")[0]
        raise AssertionError(f"no vxlan-evt link for VNI {vni} on host {n + 1}:\n{out}")

    def fdb(self, n: int, link: str) -> list[list[str]]:
        out = self.plugins[n].host.run(["bridge", "fdb", "show", "dev", link]).stdout
        return [line.split() for line in out.splitlines()]

    def neigh(self, n: int, link: str) -> list[list[str]]:
        out = self.plugins[n].host.run(["ip", "neigh", "show", "dev", link]).stdout
        return [line.split() for line in out.splitlines()]

    def fdb_entry(self, n: int, link: str, mac: str, vtep: str) -> bool:
        """`MAC dst VTEP self permanent`: what the daemon writes (a learned one is not)."""
        return any(
            row[0] == mac and f"dst {vtep}" in " ".join(row) and "permanent" in row
            for row in self.fdb(n, link)
        )

    def programmed(self, n: int, link: str, endpoint: Endpoint) -> bool:
        """Both entries for `endpoint` sit on host `n`'s vxlan link, written by the daemon."""
        neigh = any(
            row[0] == endpoint.ip and "PERMANENT" in row and endpoint.mac in row
            for row in self.neigh(n, link)
        )
        return neigh and self.fdb_entry(n, link, endpoint.mac, endpoint.vtep)

    def mentioned(self, n: int, link: str, endpoint: Endpoint) -> bool:
        """Any trace of `endpoint` in host `n`'s vxlan link tables: a neighbour for its IP, or
        a `self` FDB row (the link's own table, where the daemon writes) for its MAC.

        Not the bridge's `master` rows on that port: those the bridge learns from traffic
        and ages out by itself (300 s); no daemon writes or removes them."""
        return any(row[0] == endpoint.mac and "self" in row for row in self.fdb(n, link)) or any(
            row[0] == endpoint.ip for row in self.neigh(n, link)
        )

    def loops_back(self, n: int, link: str) -> list[str]:
        """FDB rows on host `n` that send frames to its own VTEP: broadcasts come back in
        through its own vxlan link, the bridge then learns local MACs behind that link and
        drops the replies meant for them."""
        own = self.vtep(n)
        rows = self.fdb(n, link)
        return [" ".join(row) for row in rows if f"dst {own}" in " ".join(row)]

    def explain(self, hosts: Sequence[int], vni: int = VNI) -> Callable[[], str]:
        """For failure messages: each host's FDB, neighbours and daemon log tail."""

        def text() -> str:
            parts = []
            for n in hosts:
                host = self.plugins[n].host
                try:
                    link = self.vxlan_link(n, vni)
                    fdb = host.run(["bridge", "fdb", "show", "dev", link]).stdout
                    neigh = host.run(["ip", "neigh", "show", "dev", link]).stdout
                except (AssertionError, LabError) as error:
                    fdb, neigh = str(error), ""
                log = daemon_log(self.plugins[n])
                parts.append(f"--- host {n + 1}: fdb\n{fdb}--- neigh\n{neigh}--- log\n{log}")
            return "\n".join(parts)

        return text

    def wait_programmed(
        self, endpoints: Sequence[Endpoint], on: Sequence[int], vni: int = VNI
    ) -> float:
        """Until every host in `on` holds both entries for every remote one of `endpoints`."""
        links = {n: self.vxlan_link(n, vni) for n in on}

        def done() -> bool:
            return all(
                self.programmed(n, links[n], e) for n in on for e in endpoints if e.host != n
            )

        return wait_for("entries programmed", done, PROGRAM_TIMEOUT, self.explain(on, vni))

    def ping_ms(self, source: Endpoint, target: Endpoint) -> float:
        """One echo, a 1 s wait: succeeds only if nothing (no ARP retry) held it up; its RTT."""
        result = self.plugins[source.host].host.docker(
            "exec", source.container, "ping", "-c", "1", "-W", "1", target.ip, check=False
        )
        detail = f"{source.container} -> {target.container} ({target.ip})"
        if result.returncode != 0:
            loops = {
                n + 1: rows
                for n in {source.host, target.host}
                if (rows := self.loops_back(n, self.vxlan_link(n)))
            }
            hint = f"FDB rows towards a host's own VTEP (by host): {loops}\n" if loops else ""
            pytest.fail(f"{detail}:\n{result.stdout}{result.stderr}{hint}", pytrace=False)
        match = re.search(r"time=([\d.]+) ms", result.stdout)
        assert match, f"{detail}: no RTT in\n{result.stdout}"
        return float(match.group(1))


def daemon_log(plugin: PluginHost, lines: int = 40) -> str:
    """The tail of a daemon's log without the HTTP client's chatter (-d logs every request)."""
    text = plugin.log_path.read_text(errors="replace") if plugin.log_path.exists() else ""
    kept = [line for line in text.splitlines() if "logger=httpcore" not in line]
    return "\n".join(kept[-lines:])


# --- fixtures ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lab(
    lab_session: Path, busybox_tar: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Lab]:
    binary = find_etcd()
    if binary is None:
        require(["etcd binary not found (apt-get install etcd-server)"])
        raise AssertionError("unreachable")
    require(missing_prerequisites(docker=True))
    log_dir = tmp_path_factory.mktemp("multihost-etcd")
    factory = LabFactory(lab_session, log_dir / "lab-logs")
    fabric = Fabric(base_dir=lab_session)
    etcd: EtcdServer | None = None
    try:
        address = fabric.bridge_address()
        (log_dir / "etcd").mkdir()
        etcd = EtcdServer(
            binary, log_dir / "etcd", netns=fabric.netns, address=address, client_port=ETCD_PORT
        )
        etcd.start()
        hosts = parallel(lambda n: factory(f"h{n + 1}"), range(HOSTS))
        for host in hosts:
            fabric.attach(host)  # h1 gets 10.77.0.1, and so on
        parallel(lambda host: busybox_image(host, busybox_tar), hosts)
        yield Lab(fabric, etcd, hosts)
    finally:
        try:
            factory.close()
        finally:
            try:
                if etcd is not None:
                    etcd.close()
            finally:
                fabric.close()


@pytest.fixture
def cluster(lab: Lab, request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Cluster]:
    """Daemons on every host for one test; afterwards no container, network or link is left."""
    if lab.broken:
        pytest.fail(f"lab hosts unusable after an earlier teardown: {lab.broken}", pytrace=False)
    ensure_etcd(lab.etcd)
    cluster = Cluster(lab, f"/vxevt-e2e/{request.node.name}/", tmp_path)
    for n, host in enumerate(lab.hosts):
        plugin = PluginHost(host, tmp_path / f"daemon-h{n + 1}.log", tmp_path / f"state-h{n + 1}")
        cluster.plugins.append(plugin)
    try:
        parallel(cluster.start_daemon, range(HOSTS))
        yield cluster
    finally:
        try:
            reset(cluster)
        except BaseException as error:
            lab.broken = f"{request.node.name}: {error}"
            raise


def ensure_etcd(etcd: EtcdServer) -> None:
    """Start etcd again if a test left it stopped (same data dir and port)."""
    if etcd.process is None or etcd.process.poll() is not None:
        etcd.start()


def reset(cluster: Cluster) -> None:
    """Remove every container and network while our daemons still answer, then stop them.

    etcd and any killed daemon come back first: Docker's Leave/DeleteEndpoint calls must find
    a daemon, or dockerd retries for a long time. Raises if a vxlan-evt link is left.
    """
    ensure_etcd(cluster.lab.etcd)
    problems: list[str] = []

    def tidy(n: int) -> None:
        plugin = cluster.plugins[n]
        try:
            if plugin.process is None or plugin.process.poll() is not None:
                cluster.start_daemon(n)
            host = plugin.host
            if ids := host.docker("ps", "-aq").stdout.split():
                host.docker("rm", "-f", "-v", *ids, timeout=120)
            if nets := host.docker(
                "network", "ls", "-q", "--filter", "driver=vxlan"
            ).stdout.split():
                host.docker("network", "rm", *nets)
            if links := plugin.owned_links():
                problems.append(f"host {n + 1}: links left: {links}\n{daemon_log(plugin)}")
        finally:
            if plugin.process is not None:
                plugin.stop()

    parallel(tidy, range(HOSTS))
    if problems:
        raise LabError("\n".join(problems))


# --- tests ---------------------------------------------------------------------------------


def test_peers_from_etcd_are_programmed_before_the_first_ping(cluster: Cluster) -> None:
    cluster.create_network()
    endpoints = cluster.one_container_per_host()
    assert len({e.ip for e in endpoints}) == HOSTS and len({e.mac for e in endpoints}) == HOSTS
    # Before any packet: every host holds FDB + neighbour entries for the others' containers
    # (only etcd can have told it: no Group, no miss notifications on this network) ...
    took = cluster.wait_programmed(endpoints, on=range(HOSTS))
    # ... and, unicast VXLAN, one all-zeros entry per remote VTEP for broadcast (head-end
    # replication), so that ARP and other broadcasts reach every host.
    for n in range(HOSTS):
        link = cluster.vxlan_link(n)
        for m in range(HOSTS):
            if m != n:
                assert cluster.fdb_entry(n, link, ZERO_MAC, cluster.vtep(m)), (
                    f"host {n + 1} has no flood entry for host {m + 1}\n" + cluster.explain([n])()
                )
    for n in range(HOSTS):
        assert not cluster.loops_back(n, cluster.vxlan_link(n)), (
            f"host {n + 1} programs entries towards its own VTEP {cluster.vtep(n)}\n"
            + cluster.explain([n])()
        )
    rtts: dict[str, float] = {}
    for source in endpoints:
        for target in endpoints:
            if target is not source:
                rtt = cluster.ping_ms(source, target)
                rtts[f"{source.container}->{target.container}"] = rtt
                assert rtt < FIRST_PING_LIMIT_MS, f"first ping took {rtt} ms: {rtts}"
    print(f"entries on every host {took:.2f} s after the last docker run; first pings (ms): {rtts}")


def test_a_removed_container_leaves_every_other_host(cluster: Cluster) -> None:
    cluster.create_network()
    a, b, c = endpoints = cluster.one_container_per_host()
    cluster.wait_programmed(endpoints, on=range(HOSTS))
    links = [cluster.vxlan_link(n) for n in range(HOSTS)]

    cluster.remove(a)
    took = wait_for(
        "c1's entries gone from hosts 2 and 3",
        lambda: not any(cluster.mentioned(n, links[n], a) for n in (1, 2)),
        PROGRAM_TIMEOUT,
        cluster.explain([1, 2]),
    )
    # the others stay, and keep working
    assert cluster.programmed(1, links[1], c) and cluster.programmed(2, links[2], b)
    cluster.ping_ms(b, c)
    print(f"removed container's entries gone from the other hosts after {took:.2f} s")


def test_a_killed_daemon_leaves_after_its_lease_and_comes_back(cluster: Cluster) -> None:
    cluster.create_network()
    a, b, c = endpoints = cluster.one_container_per_host()
    cluster.wait_programmed(endpoints, on=range(HOSTS))
    links = [cluster.vxlan_link(n) for n in range(HOSTS)]

    cluster.kill_daemon(0)
    took = wait_for(
        "dead host 1's entries gone from hosts 2 and 3",
        lambda: not any(cluster.mentioned(n, links[n], a) for n in (1, 2)),
        LEASE_TTL * 5,
        cluster.explain([1, 2]),
    )
    assert cluster.programmed(1, links[1], c) and cluster.programmed(2, links[2], b)
    cluster.ping_ms(b, c)
    # its container is still running: a restarted daemon publishes it again
    cluster.start_daemon(0)
    back = cluster.wait_programmed([a], on=[1, 2])
    cluster.ping_ms(b, a)
    print(f"killed host's entries gone after {took:.2f} s (TTL {LEASE_TTL} s); back {back:.2f} s")


def test_an_etcd_outage_keeps_traffic_and_changes_converge_afterwards(cluster: Cluster) -> None:
    cluster.create_network()
    a, b, c = endpoints = cluster.one_container_per_host()
    cluster.wait_programmed(endpoints, on=range(HOSTS))
    links = [cluster.vxlan_link(n) for n in range(HOSTS)]
    etcd = cluster.lab.etcd

    etcd.stop()
    stopped = time.monotonic()
    cluster.ping_ms(b, c)
    cluster.ping_ms(c, b)
    # changes while etcd is down: Docker's calls must not wait for etcd
    cluster.remove(c)
    b2 = cluster.run(1, "c2b")
    # longer than the lease TTL and a few reconnect attempts: nothing cached is dropped
    time.sleep(max(0.0, 2 * LEASE_TTL - (time.monotonic() - stopped)))
    for n, peer in ((0, b), (1, a), (2, a), (2, b)):
        assert cluster.programmed(n, links[n], peer), (
            f"host {n + 1} dropped {peer.container} while etcd was down\n" + cluster.explain([n])()
        )
    cluster.ping_ms(a, b)
    cluster.ping_ms(b, a)
    assert not cluster.programmed(0, links[0], b2), "c2b cannot be known without etcd"
    outage = time.monotonic() - stopped

    etcd.start()
    took = wait_for(
        "changes made during the outage reached the other hosts",
        lambda: (
            cluster.programmed(0, links[0], b2)
            and not cluster.mentioned(0, links[0], c)
            and not cluster.mentioned(1, links[1], c)
        ),
        30.0,
        cluster.explain([0, 1]),
    )
    assert cluster.programmed(2, links[2], b2), cluster.explain([2])()
    rtt = cluster.ping_ms(a, b2)
    print(
        f"etcd down {outage:.1f} s; changes converged {took:.2f} s after its restart; "
        f"first ping to the new container {rtt} ms"
    )


def test_shared_ipam_hands_out_distinct_addresses_under_concurrency(cluster: Cluster) -> None:
    cluster.create_network(ipam=True)
    per_host = 4
    names = [(n, f"i{n + 1}{k}") for n in range(HOSTS) for k in range(per_host)]
    start = time.monotonic()
    endpoints = parallel(lambda job: cluster.run(job[0], job[1], IPAM_NETWORK), names)
    took = time.monotonic() - start
    addresses = [e.ip for e in endpoints]
    subnet = ipaddress.ip_network(IPAM_SUBNET)
    assert len(set(addresses)) == len(names), f"duplicate addresses: {sorted(addresses)}"
    assert all(ipaddress.ip_address(ip) in subnet for ip in addresses), addresses
    assert IPAM_GATEWAY not in addresses
    # what etcd publishes agrees: every host learns all the others' (IP, MAC) pairs
    cluster.wait_programmed(endpoints, on=range(HOSTS), vni=IPAM_VNI)
    print(f"{len(names)} containers on {HOSTS} hosts started in {took:.1f} s: {sorted(addresses)}")
