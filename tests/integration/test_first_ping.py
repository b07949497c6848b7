"""The first packet after an L3 miss, and on-demand entries, on real traffic between netns hosts.

Daemons run on both hosts (the answer needs a miss answered on each side).
The figures are printed (`pytest -s`) because they are the point: with the
ARP answer the first ping takes milliseconds, without it the container's
ARP retry (~1 s per side) dominates.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from ipaddress import IPv6Address, ip_address
from pathlib import Path

import pytest

from vxlan_evt.kernel.sockets import socket_in_netns
from vxlan_evt.testing.daemon import NETWORK_ID, DaemonProcess, join_container, wait_for
from vxlan_evt.testing.netns import Netns, VxlanHost, add_underlay, namespaces, two_hosts

pytestmark = [
    pytest.mark.root,
    pytest.mark.skipif(os.geteuid() != 0, reason="needs root: network namespaces and links"),
]

Rig = tuple[VxlanHost, VxlanHost]
ETH_P_ALL, ETH_P_ARP, ETH_P_IP, ETH_P_IPV6 = 0x0003, 0x0806, 0x0800, 0x86DD
FAST_MS = 200.0


# --- helpers -------------------------------------------------------------------------------


def write_peers(path: Path, other: VxlanHost) -> Path:
    """The other host's container, IPv4 and IPv6, behind the other host's VTEP."""
    entries = [
        {"ip": ip, "mac": other.container_mac, "vtep": other.underlay_ip}
        for ip in (other.container_ip, other.container_ip6)
    ]
    path.write_text(json.dumps({"42": entries}))
    return path


@contextlib.contextmanager
def daemons_on(rig: Rig, workdir: Path, *args: str) -> Iterator[tuple[DaemonProcess, ...]]:
    started: list[DaemonProcess] = []
    try:
        for me, other in (rig, rig[::-1]):
            home = workdir / f"d{me.n}"
            home.mkdir()
            peers = write_peers(workdir / f"peers-{me.n}.json", other)
            started.append(DaemonProcess(me.host.name, home, "--peers", str(peers), *args).start())
        yield tuple(started)
    finally:
        for daemon in started:
            daemon.stop(signal.SIGKILL)


def ping(netns: Netns, address: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = ["ip", "netns", "exec", netns.name, "ping", "-n", *args, address]
    return subprocess.run(argv, capture_output=True, text=True, timeout=60)


def first_rtt(netns: Netns, address: str) -> float:
    """RTT in ms of one ping (the first packet to `address` this container sends)."""
    result = ping(netns, address, "-c", "1", "-W", "5")
    found = re.search(r"time=([0-9.]+) ms", result.stdout)
    assert found, result.stdout + result.stderr
    return float(found.group(1))


def add_container(host: VxlanHost, netns: Netns, port: str, n: int) -> str:
    """Another container on host's bridge (veth `port`); returns its IPv4 address."""
    host.host.ip("link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", netns.name)
    host.host.ip("link", "set", port, "master", host.bridge, "up")
    netns.ip("link", "set", "eth0", "address", f"02:42:c0:a8:2a:{n:02x}", "mtu", "1450", "up")
    netns.ip("addr", "add", f"192.168.42.{n}/24", "dev", "eth0")
    return f"192.168.42.{n}"


def capture_socket(netns: str, ifname: str) -> socket.socket:
    """A raw socket seeing every frame on `ifname` in `netns`."""

    def make() -> socket.socket:
        sock = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(ETH_P_ALL))
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
            sock.bind((ifname, ETH_P_ALL))
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    return socket_in_netns(netns, make)


def drain(sock: socket.socket) -> list[bytes]:
    frames = []
    with contextlib.suppress(BlockingIOError):
        while True:
            frames.append(sock.recv(65535))
    return frames


def announced_ips(frame: bytes) -> list[str]:
    """IPs a frame announces (ARP sender, NA target), also inside VXLAN (UDP 4789)."""
    (ethertype,) = struct.unpack_from("!H", frame, 12)
    if ethertype == ETH_P_ARP and len(frame) >= 42:
        return [str(ip_address(frame[28:32]))]
    if ethertype == ETH_P_IPV6 and len(frame) >= 78 and frame[20] == 58 and frame[54] == 136:
        return [str(IPv6Address(frame[62:78]))]
    if ethertype == ETH_P_IP and frame[23] == 17:
        header = (frame[14] & 0x0F) * 4
        (dport,) = struct.unpack_from("!H", frame, 14 + header + 2)
        if dport == 4789:
            return announced_ips(frame[14 + header + 16 :])
    return []


# --- fixtures --------------------------------------------------------------------------------


@pytest.fixture
def rig() -> Iterator[Rig]:
    with two_hosts() as hosts:
        yield hosts


# --- first ping ------------------------------------------------------------------------------


def test_first_ping_is_fast_with_the_arp_answer_and_nothing_leaks(rig: Rig, tmp_path: Path) -> None:
    a, b = rig
    with Netns("ca2") as other, daemons_on(rig, tmp_path) as (daemon_a, daemon_b):
        add_container(a, other, "ct1", 11)
        underlay = capture_socket(a.host.name, "ul0")
        with underlay:
            rtt = first_rtt(a.container, b.container_ip)
            frames = drain(underlay)
        print(f"\nfirst ping with ARP answer: {rtt:.2f} ms")
        assert rtt < FAST_MS, daemon_a.log() + daemon_b.log()

        # Both halves went through a miss and an answer, not through pre-programming.
        for daemon, asked in ((daemon_a, b.container_ip), (daemon_b, a.container_ip)):
            populated = daemon.get("events", type="populate")
            assert any(e["subject"] == asked and e["result"] == "answered" for e in populated)
        # The answer reached both containers on host A's bridge, and nothing else.
        metrics = daemon_a.get("metrics")
        assert 'vxlan_evt_arp_answers_total{family="ipv4",result="sent"} 2.0' in metrics
        assert "ERROR" not in daemon_a.log() and "Traceback" not in daemon_a.log()

        # Never on the underlay: no ARP/NA for an overlay address, bare or encapsulated.
        assert frames, "the capture saw nothing: is it on the right link?"
        leaked = {ip for frame in frames for ip in announced_ips(frame)}
        assert not leaked & {a.container_ip, b.container_ip}, leaked

        # The container that did not ask: at most a usable entry, its link unharmed.
        seen = other.ip("neigh", "show", b.container_ip).split()
        assert not seen or seen[-1] in {"STALE", "REACHABLE"}, seen
        stats = json.loads(other.ip("-j", "-s", "link", "show", "eth0"))[0]["stats64"]["rx"]
        assert stats["errors"] == 0 and stats["dropped"] == 0, stats
        assert "answer not sent" not in daemon_a.log()


def test_first_ping_waits_for_the_arp_retry_without_the_answer(rig: Rig, tmp_path: Path) -> None:
    a, b = rig
    with daemons_on(rig, tmp_path, "--no-arp-answer") as (daemon_a, _):
        rtt = first_rtt(a.container, b.container_ip)
        print(f"\nfirst ping without ARP answer: {rtt:.2f} ms")
        assert rtt > 500.0
        assert "vxlan_evt_arp_answers_total{" not in daemon_a.get("metrics")


def test_first_ping_when_pre_programmed(rig: Rig) -> None:
    """The baseline: the entries a pre-programming daemon writes, in place before the ping."""
    a, b = rig
    for me, other in (rig, rig[::-1]):
        dev = ("dev", "vx-42")
        me.host.ip("neigh", "replace", other.container_ip, "lladdr", other.container_mac, *dev,
                   "nud", "permanent")  # fmt: skip
        me.host.bridge("fdb", "replace", other.container_mac, *dev, "dst", other.underlay_ip,
                       "self", "permanent")  # fmt: skip
    rtt = first_rtt(a.container, b.container_ip)
    print(f"\nfirst ping pre-programmed: {rtt:.2f} ms")
    assert rtt < FAST_MS


def test_first_ping6_is_fast_with_the_neighbour_advertisement(rig: Rig, tmp_path: Path) -> None:
    a, b = rig
    with daemons_on(rig, tmp_path) as (daemon_a, daemon_b):
        rtt = first_rtt(a.container, b.container_ip6)
        print(f"\nfirst ping6 with NA answer: {rtt:.2f} ms")
        assert rtt < FAST_MS, daemon_a.log() + daemon_b.log()
        assert 'vxlan_evt_arp_answers_total{family="ipv6",result="sent"} 1.0' in daemon_a.get(
            "metrics"
        )


def test_unknown_ip_is_exposed_and_nothing_is_written_or_answered(rig: Rig, tmp_path: Path) -> None:
    a, _ = rig
    with daemons_on(rig, tmp_path, "--resolve", "on-demand") as (daemon_a, _):
        ping(a.container, "192.168.42.77", "-c", "1", "-W", "1")
        rows = wait_for(
            lambda: [r for r in daemon_a.get("misses") if r["subject"] == "192.168.42.77"], 10
        )
        assert rows and rows[0]["unanswered"] >= 1
        assert "192.168.42.77" not in a.host.ip("neigh", "show", "dev", "vx-42")
        assert daemon_a.get("ondemand") == []
        assert "vxlan_evt_arp_answers_total{" not in daemon_a.get("metrics")


# --- on demand -------------------------------------------------------------------------------


def kernel_has(host: VxlanHost, other: VxlanHost) -> tuple[bool, bool]:
    neigh = host.host.ip("neigh", "show", "dev", "vx-42")
    fdb = host.host.bridge("fdb", "show", "dev", "vx-42")
    return (
        f"{other.container_ip} lladdr {other.container_mac}" in neigh,
        f"{other.container_mac} dst {other.underlay_ip} self" in fdb,
    )


def test_on_demand_entries_stay_while_used_and_go_when_idle(rig: Rig, tmp_path: Path) -> None:
    a, b = rig
    idle = 3.0
    args = ("--resolve", "on-demand", "--idle-timeout", str(idle))
    with daemons_on(rig, tmp_path, *args) as (daemon_a, _):
        assert first_rtt(a.container, b.container_ip) < FAST_MS
        assert kernel_has(a, b) == (True, True)
        (row,) = daemon_a.get("ondemand")
        assert (row["mac"], row["vtep"], row["ips"]) == (
            b.container_mac,
            b.underlay_ip,
            [b.container_ip],
        )
        assert row["idle_seconds"] is not None and row["age_seconds"] >= 0
        fdb_rows = [r for r in daemon_a.get("fdb") if r["mac"] == b.container_mac]
        assert [r["source"] for r in fdb_rows if r.get("dst") == b.underlay_ip] == ["on-demand"]

        # Traffic for longer than the idle timeout: the kernel's "used" keeps the entries.
        busy = ping(a.container, b.container_ip, "-c", "25", "-i", "0.2", "-W", "1")
        assert " 0% packet loss" in busy.stdout, busy.stdout
        assert kernel_has(a, b) == (True, True)
        assert "vxlan_evt_ondemand_evictions_total 0.0" in daemon_a.get("metrics")

        # Silence: removed within the timeout plus one sweep (and some slack).
        stopped = time.monotonic()
        assert wait_for(lambda: kernel_has(a, b) == (False, False), idle * 1.25 + 5)
        gone_after = time.monotonic() - stopped
        print(f"\non-demand entries removed {gone_after:.1f} s after the last packet")
        assert gone_after >= idle - 0.5
        assert daemon_a.get("ondemand") == []
        assert "vxlan_evt_ondemand_evictions_total 1.0" in daemon_a.get("metrics")

        # And the next conversation programs them again.
        again = ping(a.container, b.container_ip, "-c", "3", "-W", "2")
        assert "bytes from" in again.stdout, again.stdout + daemon_a.log()
        assert wait_for(lambda: kernel_has(a, b)[1], 5)


# --- a network the daemon created, with Resolve=on-demand --------------------------------------


@pytest.fixture
def owned(tmp_path: Path) -> Iterator[tuple[tuple[VxlanHost, DaemonProcess], ...]]:
    """As Docker would: CreateNetwork (Resolve=on-demand on host A only) + Join on each host."""
    with namespaces("oa", "oca", "ob", "ocb") as (ha, ca, hb, cb):
        a, b = VxlanHost(ha, ca, 1, 42), VxlanHost(hb, cb, 2, 42)
        add_underlay(a, b)
        daemons: list[DaemonProcess] = []
        try:
            for me, other in ((a, b), (b, a)):
                home = tmp_path / f"d{me.n}"
                home.mkdir()
                peers = write_peers(tmp_path / f"peers-{me.n}.json", other)
                daemon = DaemonProcess(me.host.name, home, "--peers", str(peers)).start()
                daemons.append(daemon)
                generic = {
                    "VxlanId": "42", "VtepDev": "ul0", "SrcAddr": me.underlay_ip,
                    "L2miss": "true", "L3miss": "true", "Proxy": "true", "Learning": "false",
                }  # fmt: skip
                if me is a:
                    generic["Resolve"] = "on-demand"
                daemon.ok(
                    "NetworkDriver.CreateNetwork",
                    {
                        "NetworkID": NETWORK_ID,
                        "Options": {"com.docker.network.generic": generic},
                        "IPv4Data": [{"Pool": "192.168.42.0/24", "Gateway": "192.168.42.254/24"}],
                    },
                )
                join_container(me, daemon, f"{me.n}" * 64)
            yield (a, daemons[0]), (b, daemons[1])
        finally:
            for daemon in daemons:
                daemon.stop(signal.SIGKILL)


def test_resolve_option_makes_one_network_on_demand(
    owned: tuple[tuple[VxlanHost, DaemonProcess], ...],
) -> None:
    (a, daemon_a), (b, daemon_b) = owned
    assert [n["resolve"] for n in daemon_a.get("networks")] == ["on-demand"]
    assert [n["resolve"] for n in daemon_b.get("networks")] == ["preprogram"]
    # Host B pre-programs as before; host A waits for a miss, but floods (no Group) to B.
    assert kernel_has(b, a) == (True, True)
    assert kernel_has(a, b) == (False, False)
    flood = f"00:00:00:00:00:00 dst {b.underlay_ip} self permanent"
    assert wait_for(lambda: flood in a.host.bridge("fdb", "show", "dev", "vx-42"))

    rtt = first_rtt(a.container, b.container_ip)
    print(f"\nfirst ping, daemon-made on-demand network: {rtt:.2f} ms")
    assert rtt < FAST_MS, daemon_a.log()
    (row,) = daemon_a.get("ondemand")
    assert row["mac"] == b.container_mac and row["ips"] == [b.container_ip]
    # The answer went to the endpoint's host veth (from the state), vh<endpoint id>.
    assert 'vxlan_evt_arp_answers_total{family="ipv4",result="sent"} 1.0' in daemon_a.get("metrics")
    assert daemon_b.get("ondemand") == []


def test_switching_to_on_demand_across_a_restart_removes_pre_programmed_entries(
    owned: tuple[tuple[VxlanHost, DaemonProcess], ...], tmp_path: Path
) -> None:
    (a, _), (b, daemon_b) = owned
    assert kernel_has(b, a) == (True, True)
    assert daemon_b.stop() == 0
    peers = tmp_path / f"peers-{b.n}.json"
    on_demand = DaemonProcess(
        b.host.name, tmp_path / f"d{b.n}", "--peers", str(peers), "--resolve", "on-demand"
    ).start()
    try:
        assert wait_for(lambda: kernel_has(b, a) == (False, False)), on_demand.log()
        flood = f"00:00:00:00:00:00 dst {a.underlay_ip} self permanent"
        assert flood in b.host.bridge("fdb", "show", "dev", "vx-42")  # flooding stays
        rtt = first_rtt(b.container, a.container_ip)  # and now B answers on demand
        assert rtt < FAST_MS, on_demand.log()
        assert [r["mac"] for r in on_demand.get("ondemand")] == [a.container_mac]
    finally:
        on_demand.stop(signal.SIGKILL)


def test_on_demand_entries_are_still_evicted_after_a_restart(rig: Rig, tmp_path: Path) -> None:
    a, b = rig
    with daemons_on(rig, tmp_path, "--resolve", "on-demand", "--idle-timeout", "3") as daemons:
        daemon_a = daemons[0]
        assert first_rtt(a.container, b.container_ip) < FAST_MS
        assert daemon_a.stop() == 0  # SIGTERM: the ledger is saved on the way out
        assert kernel_has(a, b) == (True, True)  # stopping removes nothing
        daemon_a.start()
        assert [r["mac"] for r in daemon_a.get("ondemand")] == [b.container_mac]
        assert wait_for(lambda: kernel_has(a, b) == (False, False), 3 * 1.25 + 5), daemon_a.log()
