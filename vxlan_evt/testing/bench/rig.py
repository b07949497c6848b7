"""Throwaway network namespaces for the benchmarks (plain subprocess code).

Every namespace is named `vxevt-b-<label>-<random>`; every link lives inside one
of them; `Rig.close()` deletes them (which deletes their links), so the root
namespace is never touched. `handle_sigterm()` turns SIGTERM into
KeyboardInterrupt so that `finally` blocks clean up on Ctrl-C and on kill alike.

Miss rig (`miss_rig`): one host and one container behind its bridge:

    container netns: eth0 10.42.255.254/16 (MAC 02:42:0a:2a:ff:fe)
        | veth (host end "ct0", bridge port)
    host netns: br-42 <- vx-42 (vxlan 42: l2miss l3miss proxy nolearning, dev ul0)
        | veth ul0 10.99.0.1/24 <-> ul1 (both ends in the host netns; nothing listens)

Two-host rig (`two_hosts`): hosts A and B joined by one veth underlay, each with an
empty container netns; the real daemon (`Daemon`) then creates the network and the
endpoints through its plugin API, as Docker would (`create_network`, `join`):

    container-A netns        host-A netns                    host-B netns        container-B
    eth0 (from Join) -- vh* on br-42 <- vx-42 on ul0 10.99.0.1 <-> ul0 10.99.0.2 ... eth0
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import IO, Any

import httpx

from vxlan_evt.kernel.sockets import socket_in_netns
from vxlan_evt.kernel.wire import RTMGRP_NEIGH, SO_RCVBUFFORCE
from vxlan_evt.testing import netns  # the same namespaces the tests use
from vxlan_evt.testing.bench.wire import BRIDGE, CONTAINER_IP, CONTAINER_MAC, LOCAL_VTEP, VNI, VXLAN

PREFIX = "vxevt-b-"
ROOT = Path(__file__).resolve().parents[3]  # the repository: `git describe`, the daemon's cwd

# A setup command failed; the message has the command and its stderr.
RigError = netns.NetnsError


def run(argv: list[str], *, input: str | None = None, check: bool = True) -> str:
    """Run a command and return its stdout; RigError with stderr on failure."""
    return netns.run(argv, input=input, check=check, timeout=120)


class NeighWatcher:
    """A thread stamping (CLOCK_MONOTONIC ns) every datagram of the neighbour group in one
    netns: misses, FDB and neighbour entries. Kept as `records`, or handed to `on_datagram`."""

    def __init__(
        self,
        netns: str,
        *,
        rcvbuf: int = 64 << 20,
        on_datagram: Callable[[int, bytes], None] | None = None,
    ) -> None:
        def make() -> socket.socket:
            sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, socket.NETLINK_ROUTE)
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            sock.bind((0, RTMGRP_NEIGH))
            return sock

        self._sock = socket_in_netns(netns, make)
        self._sock.settimeout(0.1)
        self.records: list[tuple[int, bytes]] = []
        self.overflows = 0  # ENOBUFS: notifications lost
        self._on_datagram = on_datagram or (lambda t, data: self.records.append((t, data)))
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"watch-{netns}", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        buffer = bytearray(1 << 16)
        while not self._stop.is_set():
            try:
                size = self._sock.recv_into(buffer)
            except TimeoutError:
                continue
            except OSError:
                self.overflows += 1
                continue
            self._on_datagram(time.monotonic_ns(), bytes(buffer[:size]))

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self._sock.close()


def run_bench(
    name: str,
    args: Any,
    body: Callable[[Path], str],
    *,
    needs: tuple[str, ...] = (),
    footer: str = "",
    failures: tuple[type[BaseException], ...] = (RigError,),
) -> int:
    """The shell every bench's main() shares: root and the `needs` binaries, SIGTERM as
    Ctrl-C, `--remove-stale`, a work dir (kept with `--keep`), `body(workdir)`'s report
    and a footer naming the daemon flags and code. Exit 2: cannot run; 130: interrupted;
    1: a `failures` error (namespaces and processes are gone either way)."""
    if os.geteuid() != 0:
        print("needs root (network namespaces)", file=sys.stderr)
        return 2
    for binary in needs:
        if shutil.which(binary) is None:
            print(f"needs {binary} (see tools/install-deps.sh)", file=sys.stderr)
            return 2
    handle_sigterm()
    if args.remove_stale:
        print(f"removed: {remove_stale() or 'nothing'}", file=sys.stderr)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix=f"vxevt-b-{name}-"))
    try:
        print(body(workdir))
        flags = " ".join(getattr(args, "daemon_arg", ())) or "(defaults)"
        print(
            f"\ndaemon flags: {flags}; code {code_version()}; {footer}{os.cpu_count()} CPUs; "
            f"took {time.monotonic() - started:.0f} s"
        )
    except KeyboardInterrupt:
        print("interrupted; namespaces and processes removed", file=sys.stderr)
        return 130
    except failures as exc:
        print(f"failed: {exc}; namespaces and processes removed", file=sys.stderr)
        if not args.keep:
            print("(re-run with --keep to keep the logs)", file=sys.stderr)
        return 1
    finally:
        if args.keep:
            print(f"work dir kept: {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


def code_version() -> str:
    """`git describe --always --dirty` of the checkout the daemon runs from ("unknown" if none)."""
    done = subprocess.run(
        ["git", "-C", str(ROOT), "describe", "--always", "--dirty"],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    return done.stdout.strip() or "unknown"


def handle_sigterm() -> None:
    """SIGTERM raises KeyboardInterrupt in the main thread, like Ctrl-C."""

    def raise_interrupt(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt(f"signal {signum}")

    signal.signal(signal.SIGTERM, raise_interrupt)


class Netns(netns.Netns):
    """One benchmark namespace `vxevt-b-<label>-<hex>`, IPv6 off; `close()` deletes it."""

    command_timeout = 120

    def __init__(self, label: str) -> None:
        super().__init__(label, prefix=PREFIX, ipv6=False)


@dataclass(slots=True)
class MissRig:
    host: Netns
    container: Netns
    vxlan_ifindex: int

    def flush_entries(self) -> None:
        """Remove every FDB and neighbour entry of vx-42 (so the next run misses afresh)."""
        self.host.bridge("fdb", "flush", "dev", VXLAN, "self")
        self.host.ip("neigh", "flush", "dev", VXLAN, "nud", "all")

    def counts(self) -> tuple[int, int]:
        """(self FDB entries, permanent neighbour entries) on vx-42."""
        fdb = self.host.bridge("fdb", "show", "dev", VXLAN)
        neigh = self.host.ip("neigh", "show", "dev", VXLAN)
        return (
            sum(" self" in line for line in fdb.splitlines()),
            sum("PERMANENT" in line for line in neigh.splitlines()),
        )


def add_vxlan(host: Netns, *, bridge: bool) -> int:
    """Underlay veth ul0/ul1 and vx-42 on ul0 (optionally on br-42); vx-42's ifindex."""
    add_loop_underlay(host, f"{LOCAL_VTEP}/24")
    host.ip(
        "link", "add", VXLAN, "type", "vxlan", "id", str(VNI), "dev", "ul0",
        "dstport", "4789", "l2miss", "l3miss", "proxy", "nolearning",
    )  # fmt: skip
    if bridge:
        host.ip("link", "add", BRIDGE, "type", "bridge")
        host.ip("link", "set", VXLAN, "master", BRIDGE)
        host.ip("link", "set", BRIDGE, "up")
    host.ip("link", "set", VXLAN, "up")
    return host.ifindex(VXLAN)


def add_loop_underlay(host: Netns, address: str) -> None:
    """Underlay veth ul0 (with `address`, a CIDR) <-> ul1, both in `host`: nothing answers
    on ul1, so whatever is encapsulated towards a remote VTEP ends there."""
    host.ip("link", "add", "ul0", "type", "veth", "peer", "name", "ul1")
    host.ip("addr", "add", address, "dev", "ul0")
    host.ip("link", "set", "ul0", "up")
    host.ip("link", "set", "ul1", "up")


@contextlib.contextmanager
def miss_rig() -> Iterator[MissRig]:
    """Host + container namespaces as in the module docstring; deleted on exit."""
    with contextlib.ExitStack() as stack:
        host = Netns("host")
        stack.callback(host.close)
        container = Netns("ct")
        stack.callback(container.close)
        ifindex = add_vxlan(host, bridge=True)
        host.ip(
            "link", "add", "ct0", "type", "veth", "peer", "name", "eth0", "netns", container.name
        )
        host.ip("link", "set", "ct0", "master", BRIDGE)
        host.ip("link", "set", "ct0", "up")
        container.ip("link", "set", "eth0", "address", CONTAINER_MAC, "mtu", "1450")
        container.ip("addr", "add", f"{CONTAINER_IP}/16", "dev", "eth0")
        container.ip("link", "set", "eth0", "up")
        yield MissRig(host, container, ifindex)


def stale_namespaces() -> list[str]:
    """Names of `vxevt-b-*` namespaces (left behind by a killed run)."""
    names = (line.split()[0] for line in run(["ip", "netns", "list"]).splitlines() if line)
    return [n for n in names if n.startswith(PREFIX)]


def remove_stale() -> list[str]:
    """Delete every `vxevt-b-*` namespace; the names removed."""
    removed = stale_namespaces()
    for name in removed:
        run(["ip", "netns", "del", name], check=False)
    return removed


# --- the real daemon, driven through its plugin API as Docker would ---------------------------

NETWORK_ID = "be" * 32  # the one network of a bench rig
SUBNET = "10.42.0.0/16"
GATEWAY = "10.42.255.1/16"  # on br-42 (scope local); outside every address the benches use


def metric_value(text: str, series: str) -> float:
    """One series of a Prometheus text page, e.g. `foo_total{a="b"}`; a bare family name
    sums all its series. 0.0 when absent."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith("#") or " " not in line:
            continue
        name, value = line.rsplit(" ", 1)
        if name == series or ("{" not in series and name.split("{", 1)[0] == series):
            total += float(value)
    return total


class Daemon:
    """`python -m vxlan_evt serve` in `netns`: sockets, state and log under `workdir`.

    The constructor returns once the plugin socket answers Plugin.Activate. `stop()`
    sends SIGTERM (SIGKILL after 15 s); call it before the netns goes away.
    """

    def __init__(self, netns: Netns, workdir: Path, *args: str, timeout: float = 30.0) -> None:
        workdir.mkdir(parents=True, exist_ok=True)
        self.netns = netns
        self.plugin_socket = workdir / "plugins" / "vxlan.sock"
        self.api_socket = workdir / "api.sock"
        self.log_path = workdir / "daemon.log"
        argv = netns.exec_argv(
            sys.executable, "-m", "vxlan_evt", "serve",
            "--plugin-socket", str(self.plugin_socket),
            "--state-dir", str(workdir / "state"),
            "--api-socket", str(self.api_socket),
            *args,
        )  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self._log: IO[bytes] = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, env=env,
            start_new_session=True,  # Ctrl-C reaches us only; we stop it in order
        )  # fmt: skip
        try:
            self._wait_ready(timeout)
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RigError(f"daemon exited early:\n{self.log_tail()}")
            if self.plugin_socket.exists():
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
                    accepting = probe.connect_ex(str(self.plugin_socket)) == 0
                if accepting:
                    self.call("Plugin.Activate")
                    return
            time.sleep(0.05)
        raise RigError(f"daemon not ready after {timeout:g} s:\n{self.log_tail()}")

    @property
    def pid(self) -> int:
        return self.process.pid  # `ip netns exec` execs python: the same pid

    def log_tail(self, chars: int = 3000) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")[-chars:]

    def call(self, method: str, body: Mapping[str, Any] | None = None) -> Any:
        """POST /<method> on the plugin socket; its JSON answer, RigError unless 200."""
        transport = httpx.HTTPTransport(uds=str(self.plugin_socket))
        with httpx.Client(transport=transport, timeout=60.0) as client:
            response = client.post(f"http://plugin/{method}", content=json.dumps(body or {}))
        if response.status_code != 200:
            raise RigError(f"{method} -> {response.status_code} {response.text}")
        return response.json()

    def get(self, resource: str, **params: str) -> str:
        """GET /<resource> of the observe API, as text."""
        transport = httpx.HTTPTransport(uds=str(self.api_socket))
        with httpx.Client(transport=transport, timeout=60.0) as client:
            response = client.get(f"http://observe/{resource}", params=params)
        response.raise_for_status()
        return response.text

    def metric(self, series: str) -> float:
        return metric_value(self.get("metrics"), series)

    def settle(self, quiet: float = 0.3, timeout: float = 120.0) -> None:
        """Return once the daemon's event count stood still for `quiet` seconds."""
        deadline = time.monotonic() + timeout
        last = -1.0
        while time.monotonic() < deadline:
            events = self.metric("vxlan_evt_events_total")
            if events == last:
                return
            last = events
            time.sleep(quiet)

    def rss_kib(self) -> int:
        """Resident set size (VmRSS) in KiB."""
        with open(f"/proc/{self.pid}/status") as status:
            found = re.search(r"^VmRSS:\s+(\d+) kB", status.read(), re.MULTILINE)
        return int(found.group(1)) if found else 0

    def cpu_seconds(self) -> float:
        """CPU time (user + system) of the whole process so far."""
        with open(f"/proc/{self.pid}/stat") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self._log.close()


def create_network(
    daemon: Daemon, *, src_addr: str, resolve: str | None = None, **options: str
) -> None:
    """CreateNetwork for VNI 42 on ul0 (l2miss l3miss proxy nolearning, no Group: head-end
    replication), subnet 10.42.0.0/16; `resolve` sets the network's Resolve option."""
    generic = {
        "VxlanId": str(VNI), "VtepDev": "ul0", "SrcAddr": src_addr,
        "L2miss": "true", "L3miss": "true", "Proxy": "true", "Learning": "false",
        **options,
    }  # fmt: skip
    if resolve is not None:
        generic["Resolve"] = resolve
    daemon.call(
        "NetworkDriver.CreateNetwork",
        {
            "NetworkID": NETWORK_ID,
            "Options": {"com.docker.network.generic": generic},
            "IPv4Data": [{"Pool": SUBNET, "Gateway": GATEWAY}],
        },
    )


def join(daemon: Daemon, container: Netns, endpoint_id: str, address: str, mac: str) -> str:
    """CreateEndpoint + Join, then Docker's part: move the container end into `container`
    as eth0 with `address` (a CIDR) and bring it up. Returns the host end's name."""
    body = {"NetworkID": NETWORK_ID, "EndpointID": endpoint_id}
    daemon.call(
        "NetworkDriver.CreateEndpoint",
        {**body, "Interface": {"Address": address, "MacAddress": mac}},
    )
    joined = daemon.call("NetworkDriver.Join", body)
    source = str(joined["InterfaceName"]["SrcName"])
    daemon.netns.ip("link", "set", source, "netns", container.name)
    container.ip("link", "set", source, "name", "eth0")
    container.ip("addr", "add", address, "dev", "eth0")
    container.ip("link", "set", "eth0", "up")
    return "vh" + source.removeprefix("vc")


def add_addresses(netns: Netns, addresses: list[str], dev: str = "eth0") -> None:
    """Many addresses (CIDRs) on `dev` in one `ip -batch`."""
    lines = "".join(f"addr add {a} dev {dev}\n" for a in addresses)
    run(["ip", "-n", netns.name, "-batch", "-"], input=lines)


@dataclass(slots=True)
class Host:
    """One "host" netns with its underlay address and one (still empty) container netns."""

    netns: Netns
    container: Netns
    underlay_ip: str


@contextlib.contextmanager
def two_hosts() -> Iterator[tuple[Host, Host]]:
    """Hosts A (10.99.0.1) and B (10.99.0.2) joined by the veth `ul0`; all deleted on exit."""
    with contextlib.ExitStack() as stack:
        spaces = []
        for label in ("ha", "ca", "hb", "cb"):
            ns = Netns(label)
            stack.callback(ns.close)
            spaces.append(ns)
        ha, ca, hb, cb = spaces
        a, b = Host(ha, ca, "10.99.0.1"), Host(hb, cb, "10.99.0.2")
        ha.ip("link", "add", "ul0", "type", "veth", "peer", "name", "ul0", "netns", hb.name)
        for h in (a, b):
            h.netns.ip("addr", "add", f"{h.underlay_ip}/24", "dev", "ul0")
            h.netns.ip("link", "set", "ul0", "up")
        yield a, b
