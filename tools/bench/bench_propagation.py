#!/usr/bin/env python3
"""Many hosts with etcd: endpoint created on host A -> entries programmed on host B, and first ping.

    .venv/bin/python tools/bench/bench_propagation.py --quick    # ~1 min
    .venv/bin/python tools/bench/bench_propagation.py            # ~4-5 min (see below)
    .venv/bin/python tools/bench/bench_propagation.py --count 100 --burst 20 --trials 10 \\
        --daemon-arg=--no-log-events

Needs root and the `etcd` binary. Builds four namespaces (and two per ping trial), all
`vxevt-b-*`, deleted on exit (also on Ctrl-C, SIGTERM or a failure), together with every
process this script started; the root namespace is never touched. After a `kill -9` the
processes still get SIGTERM (`setpriv --pdeathsig`); `--remove-stale` deletes namespaces:

    fabric netns "etcd": bridge ulbr 10.99.0.100/24, etcd on http://10.99.0.100:2379
        | veth ul-1                         | veth ul-2
    host A netns "ha": ul0 10.99.0.1      host B netns "hb": ul0 10.99.0.2
    daemon A (--etcd, --hostname hosta)   daemon B (--etcd, --hostname hostb)
    network VNI 42 (vx-42, br-42) made    the same network
    through the plugin API
    reference netns "ref": vx-ref (VNI 4242, no bridge), written by the reference watcher

Both daemons are the real `python -m vxlan_evt serve --etcd ...`; the network (no Group, so
head-end replication, L2/L3 miss, proxy, no learning) is created by calling the plugin API
directly, as tests/integration/test_etcd_peers.py does. Timestamps are CLOCK_MONOTONIC,
taken in whichever process sees the event (one clock for every namespace).

1. Propagation, one endpoint at a time (--count, after 5 discarded warm-ups each). Ours:
   from just before CreateEndpoint on A's plugin socket to the moment a netlink socket of
   ours in B's netns (RTMGRP_NEIGH, own thread) has seen both the FDB entry (MAC dst
   10.99.0.1 self) and the neighbour entry of that endpoint on B's vx-42. Split by an etcd
   watcher of ours running in B's netns (same JSON gateway as the daemon): the plugin call
   itself, call start -> key event at B, key event -> both entries on B. Reference, in
   the same loop, alternating with ours: a put of the same kind of record from A's netns
   (a persistent httpx client, stamped just before the put) -> that same watcher in B's
   netns writes `neigh replace ... nud permanent` and `fdb replace ... self permanent`
   into long-running `ip -n REF -force -batch -` / `bridge -n REF -force -batch -` for
   vx-ref -> our netlink socket in REF sees both entries. Also printed: the raw put ->
   watch event latency. A's endpoints stay until the phase ends, so the last ones are
   created on a host that already holds all the others: the report splits by position.
2. Burst (--burst endpoints, --burst-rounds rounds): CreateEndpoint called back to back on A
   (each call as soon as the previous returned) -> every endpoint programmed on B; against
   the same number of back-to-back puts through the reference watcher. Then the removal:
   DeleteEndpoint back to back -> every entry gone from B.
3. First ping (--trials, after one discarded warm-up): each trial builds a new endpoint
   pair, a container netns behind each host's bridge plumbed from Join's veth the way
   Docker does, and pings B's container from A's (`ping -c 2 -i 0.2`): RTT of the first and
   the second echo. "settled": both hosts' kernels already hold the other container's
   entries; "immediate": B's container exists first, A's pings right after its Join and
   plumbing, whatever has propagated by then.

Ratios are ours / reference (above 1: ours is slower), and first / second ping. The run
time is mostly the daemon's: its CreateEndpoint slows down as host A holds more endpoints
(~0.5 s each at 150-200 here), so --count and --burst cost more than linearly.
Progress goes to stderr, the report to stdout.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from vxlan_evt.testing.bench.rig import (
    NeighWatcher,
    Netns,
    RigError,
    handle_sigterm,
    run,
    run_bench,
)
from vxlan_evt.testing.bench.stats import format_ms, format_table, ns_to_ms, ratio, summarize
from vxlan_evt.testing.bench.wire import AF_BRIDGE, parse_neigh_messages

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]

PYTHON = sys.executable
ETCD_IP = "10.99.0.100"
ETCD_URL = f"http://{ETCD_IP}:2379"
HOST_NUMBERS = {"a": 1, "b": 2}
NET = "b" * 64
VNI = 42
VXLAN = f"vx-{VNI}"
POOL, GATEWAY = "10.42.0.0/16", "10.42.255.254/16"
REF_DEV, REF_VNI = "vx-ref", 4242
REF_PREFIX = "/bench-ref/"
DAEMON_PREFIX = "/vxlan-evt/v1/"
WARMUP = 5
WAIT_S = 15.0  # one endpoint not programmed by then counts as lost
BURST_WAIT_S = 120.0


class BenchError(RuntimeError):
    """Something the bench needs did not happen; the message says what and where to look."""


# --- addresses -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One endpoint (or reference record): its ID, overlay IP and MAC."""

    eid: str
    ip: str
    mac: str

    @property
    def key(self) -> str:
        """Where daemon A publishes it: `endpoints/<vni>/<host>/<first 12 of the ID>`.

        The daemon may add more to the key (e.g. `/<ip>`); see `endpoint_key_of`.
        """
        return f"{DAEMON_PREFIX}endpoints/{VNI}/hosta/{self.eid[:12]}"

    @property
    def ref_key(self) -> str:
        return f"{REF_PREFIX}{self.eid[:12]}"


class AddressPlan:
    """Unique endpoint IDs, IPs and MACs for the whole run (nothing is ever reused).

    The first 11 characters of an ID name its veth pair and the first 12 its etcd key,
    so the counter goes first. Overlay IPs of VNI 42 come from 10.42.0.0/16 (A's
    endpoints from the bottom, B's from 10.42.200.0 up); the reference's from 10.43.0.0/16.
    """

    def __init__(self) -> None:
        self._next = {"a": 1, "b": 200 * 256, "ref": 1}

    def new(self, kind: str) -> Endpoint:
        n = self._next[kind]
        self._next[kind] = n + 1
        base = "10.43.0.0" if kind == "ref" else "10.42.0.0"
        prefix = {"a": "02:aa", "b": "02:ab", "ref": "02:bb"}[kind]
        mac = prefix + "".join(f":{b:02x}" for b in n.to_bytes(4, "big"))
        ip = str(ipaddress.IPv4Address(int(ipaddress.IPv4Address(base)) + n))
        tag = {"a": "a", "b": "b", "ref": "f"}[kind]
        return Endpoint(f"{n:010x}{tag}" + "e" * 53, ip, mac)


# --- processes -------------------------------------------------------------------------------


def tied(argv: list[str]) -> list[str]:
    """`argv` run so that it gets SIGTERM should this script die without cleaning up (kill -9).

    `setpriv --pdeathsig` (util-linux) sets the parent-death signal, which survives the
    exec of `ip netns exec` and of the program it runs.
    """
    setpriv = shutil.which("setpriv")
    return [setpriv, "--pdeathsig", "TERM", *argv] if setpriv else argv


def terminate(process: subprocess.Popen[Any], timeout: float = 15.0) -> None:
    """SIGTERM, then SIGKILL; only this one process (we started it, we know its pid)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def etcd_command(data_dir: Path) -> list[str]:
    """A single-member etcd serving clients on the fabric address (cf. vxlan_evt/testing/etcd.py)."""
    peer = "http://127.0.0.1:2380"
    return [
        shutil.which("etcd") or "etcd",
        "--name=vxevt-bench",
        f"--data-dir={data_dir}",
        f"--listen-client-urls={ETCD_URL}",
        f"--advertise-client-urls={ETCD_URL}",
        f"--listen-peer-urls={peer}",
        f"--initial-advertise-peer-urls={peer}",
        f"--initial-cluster=vxevt-bench={peer}",
        "--initial-cluster-state=new",
        "--heartbeat-interval=10",
        "--election-timeout=100",
        "--logger=zap",
        "--log-outputs=stderr",
    ]


class Daemon:
    """`vxlan_evt serve --etcd` in one host netns, and a client for its plugin socket."""

    def __init__(self, host: Netns, name: str, workdir: Path, extra: Sequence[str]) -> None:
        self.host, self.name = host, name
        workdir.mkdir(parents=True, exist_ok=True)
        self.socket = workdir / "plugins" / "vxlan.sock"
        self.log_path = workdir / "daemon.log"
        argv = tied(host.exec_argv(
            PYTHON, "-m", "vxlan_evt", "serve",
            "--plugin-socket", str(self.socket),
            "--state-dir", str(workdir / "state"),
            "--api-socket", str(workdir / "api.sock"),
            "--etcd", ETCD_URL,
            "--hostname", name,
            *extra,
        ))  # fmt: skip
        self._log: IO[bytes] = self.log_path.open("wb")
        self.process = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)}, start_new_session=True,
        )  # fmt: skip
        self.client = httpx.Client(
            transport=httpx.HTTPTransport(uds=str(self.socket)), timeout=60.0
        )
        try:
            self._wait_ready()
        except BaseException:
            self.stop()
            raise

    def _wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise BenchError(f"daemon {self.name} exited early, see {self.log_path}")
            if self.socket.exists():
                with contextlib.suppress(httpx.HTTPError, OSError):
                    self.call("Plugin.Activate")
                    return
            time.sleep(0.05)
        raise BenchError(f"daemon {self.name} not ready after {timeout:g} s, see {self.log_path}")

    def call(self, method: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
        response = self.client.post(f"http://plugin/{method}", content=json.dumps(body or {}))
        if response.status_code != 200:
            raise BenchError(
                f"{self.name} {method} -> {response.status_code} {response.text}; "
                f"see {self.log_path}"
            )
        document: dict[str, Any] = response.json()
        return document

    def create_network(self, underlay_ip: str) -> None:
        self.call(
            "NetworkDriver.CreateNetwork",
            {
                "NetworkID": NET,
                "Options": {
                    "com.docker.network.generic": {
                        "VxlanId": str(VNI),
                        "VtepDev": "ul0",
                        "SrcAddr": underlay_ip,
                        "L2miss": "true",
                        "L3miss": "true",
                        "Proxy": "true",
                        "Learning": "false",
                    }
                },
                "IPv4Data": [{"Pool": POOL, "Gateway": GATEWAY}],
            },
        )

    def create_endpoint(self, ep: Endpoint) -> None:
        self.call(
            "NetworkDriver.CreateEndpoint",
            {
                "NetworkID": NET,
                "EndpointID": ep.eid,
                "Interface": {"Address": f"{ep.ip}/16", "MacAddress": ep.mac},
            },
        )

    def join(self, ep: Endpoint) -> str:
        """Join; the name of the veth end Docker would move into the container."""
        joined = self.call("NetworkDriver.Join", {"NetworkID": NET, "EndpointID": ep.eid})
        name: str = joined["InterfaceName"]["SrcName"]
        return name

    def remove(self, ep: Endpoint, *, joined: bool = False) -> None:
        ref = {"NetworkID": NET, "EndpointID": ep.eid}
        if joined:
            self.call("NetworkDriver.Leave", ref)
        self.call("NetworkDriver.DeleteEndpoint", ref)

    def stop(self) -> None:
        terminate(self.process)
        self.client.close()
        self._log.close()


# --- watching the kernels and etcd -----------------------------------------------------------


class Seen:
    """First-arrival stamps (monotonic ns) of events, and a way to wait for them."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.stamps: dict[tuple[str, ...], int] = {}

    def record(self, t: int, keys: Sequence[tuple[str, ...]]) -> None:
        with self.cond:
            for key in keys:
                self.stamps.setdefault(key, t)
            self.cond.notify_all()

    def get(self, key: tuple[str, ...]) -> int | None:
        with self.cond:
            return self.stamps.get(key)

    def wait_all(self, keys: Sequence[tuple[str, ...]], timeout: float) -> int | None:
        """The latest stamp of `keys` once all are seen; None after `timeout` seconds."""
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                if all(k in self.stamps for k in keys):
                    return max(self.stamps[k] for k in keys)
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self.cond.wait(left)


class KernelWatch:
    """A thread stamping every neighbour notification in one host netns.

    Keys: ("new"|"del", "fdb", ifindex, MAC) for AF_BRIDGE entries and
    ("new"|"del", "neigh", ifindex, IP) for neighbour entries.
    """

    def __init__(self, netns: str) -> None:
        self.seen = Seen()
        self._watcher = NeighWatcher(netns, rcvbuf=32 << 20, on_datagram=self._record)

    @property
    def overflows(self) -> int:
        return self._watcher.overflows

    def _record(self, t: int, data: bytes) -> None:
        keys: list[tuple[str, ...]] = []
        for msg in parse_neigh_messages(data):
            if msg.kind == "miss":
                continue
            if msg.family == AF_BRIDGE and msg.mac is not None:
                keys.append((msg.kind, "fdb", str(msg.ifindex), msg.mac))
            elif msg.family != AF_BRIDGE and msg.ip is not None:
                keys.append((msg.kind, "neigh", str(msg.ifindex), msg.ip))
        if keys:
            self.seen.record(t, keys)

    @staticmethod
    def entries(kind: str, ifindex: int, ep: Endpoint) -> list[tuple[str, ...]]:
        return [(kind, "fdb", str(ifindex), ep.mac), (kind, "neigh", str(ifindex), ep.ip)]

    def programmed(self, ifindex: int, eps: Sequence[Endpoint], timeout: float) -> int | None:
        """When the last FDB/neighbour entry of `eps` on `ifindex` appeared (None: not all did)."""
        keys = [k for ep in eps for k in self.entries("new", ifindex, ep)]
        return self.seen.wait_all(keys, timeout)

    def programmed_at(self, ifindex: int, ep: Endpoint) -> int | None:
        stamps = [self.seen.get(k) for k in self.entries("new", ifindex, ep)]
        return None if None in stamps else max(s for s in stamps if s is not None)

    def gone(self, ifindex: int, eps: Sequence[Endpoint], timeout: float) -> int | None:
        keys = [k for ep in eps for k in self.entries("del", ifindex, ep)]
        return self.seen.wait_all(keys, timeout)

    def close(self) -> None:
        self._watcher.close()


def endpoint_key_of(key: str) -> str:
    """`<prefix>endpoints/<vni>/<host>/<endpoint>` of a daemon key that may go on (`/<ip>`)."""
    if not key.startswith(f"{DAEMON_PREFIX}endpoints/"):
        return key
    parts = key[len(DAEMON_PREFIX) :].split("/")
    return DAEMON_PREFIX + "/".join(parts[:4])


class WatchAgent:
    """`agent-watch` in host B's netns: etcd events stamped there, and the reference writer."""

    def __init__(self, host: Netns, ref: Netns, log_path: Path) -> None:
        self.seen = Seen()
        self._log = log_path.open("wb")
        argv = tied(host.exec_argv(PYTHON, str(Path(__file__).resolve()), "agent-watch", ref.name))
        self.process = subprocess.Popen(
            argv, stdout=subprocess.PIPE, stderr=self._log, text=True, start_new_session=True
        )
        assert self.process.stdout is not None
        self._stdout = self.process.stdout
        if self._stdout.readline().strip() != "ready":
            self.close()
            raise BenchError(f"etcd watch agent did not start, see {log_path}")
        self._thread = threading.Thread(target=self._read, name="etcd-watch", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        for line in self._stdout:
            t, kind, key = line.split(maxsplit=2)
            keys = {(kind, key.strip()), (kind, endpoint_key_of(key.strip()))}
            self.seen.record(int(t), sorted(keys))

    def put_seen(self, key: str, timeout: float) -> int | None:
        return self.seen.wait_all([("PUT", key)], timeout)

    def close(self) -> None:
        terminate(self.process)
        self._log.close()


class PutAgent:
    """`agent-put` in host A's netns: puts into etcd, each stamped just before it is sent."""

    def __init__(self, host: Netns, log_path: Path) -> None:
        self._log = log_path.open("wb")
        argv = tied(host.exec_argv(PYTHON, str(Path(__file__).resolve()), "agent-put"))
        self.process = subprocess.Popen(
            argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._log, text=True,
            start_new_session=True,
        )  # fmt: skip
        assert self.process.stdin is not None and self.process.stdout is not None
        self._stdin, self._stdout = self.process.stdin, self.process.stdout
        if self._stdout.readline().strip() != "ready":
            self.close()
            raise BenchError(f"etcd put agent did not start (etcd down?), see {log_path}")

    def put(self, eps: Sequence[Endpoint], vtep: str) -> tuple[list[int], list[int]]:
        """Put one reference record per endpoint, back to back; (sent, acknowledged) stamps."""
        puts = [[ep.ref_key, f"{ep.ip} {ep.mac} {vtep}"] for ep in eps]
        self._stdin.write(json.dumps({"puts": puts}) + "\n")
        self._stdin.flush()
        line = self._stdout.readline()
        if not line:
            raise BenchError("etcd put agent died")
        reply = json.loads(line)
        if "error" in reply:
            raise BenchError(f"etcd put failed: {reply['error']}")
        return reply["sent"], reply["done"]

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self._stdin.close()
        terminate(self.process)
        self._log.close()


# --- the agents (run as `bench_propagation.py agent-watch|agent-put` inside a netns) ---------


def _b64(data: str) -> str:
    return base64.b64encode(data.encode()).decode()


def _wait_etcd(client: httpx.Client, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(httpx.HTTPError):
            if b'"health":"true"' in client.get(f"{ETCD_URL}/health", timeout=1.0).content:
                return
        if time.monotonic() > deadline:
            raise BenchError(f"etcd at {ETCD_URL} not healthy after {timeout:g} s")
        time.sleep(0.05)


def agent_watch(argv: Sequence[str]) -> int:
    """Watch every key under "/"; print "<ns> <PUT|DELETE> <key>" per event.

    Reference records (under REF_PREFIX, value "IP MAC VTEP") are written first, as one
    batch per watch response, into `ip -n REF -force -batch -` and `bridge -n REF -force
    -batch -` (REF = argv[0], the reference netns holding vx-ref).
    """
    handle_sigterm()
    ref = argv[0]
    ip = subprocess.Popen(
        ["ip", "-n", ref, "-force", "-batch", "-"], stdin=subprocess.PIPE, text=True
    )
    bridge = subprocess.Popen(
        ["bridge", "-n", ref, "-force", "-batch", "-"], stdin=subprocess.PIPE, text=True
    )
    assert ip.stdin is not None and bridge.stdin is not None
    body = {"create_request": {"key": _b64("/"), "range_end": _b64("0")}}
    out = sys.stdout
    try:
        with httpx.Client(timeout=httpx.Timeout(10.0, read=None)) as client:
            _wait_etcd(client)
            with client.stream("POST", f"{ETCD_URL}/v3/watch", json=body) as response:
                for line in response.iter_lines():
                    t = time.monotonic_ns()
                    if not line.strip():
                        continue
                    result = json.loads(line).get("result") or {}
                    if result.get("created"):
                        out.write("ready\n")
                        out.flush()
                        continue
                    events = result.get("events") or []
                    neigh, fdb, lines = [], [], []
                    for event in events:
                        kind = event.get("type", "PUT")  # the gateway leaves out the default
                        key = base64.b64decode(event["kv"]["key"]).decode()
                        if kind == "PUT" and key.startswith(REF_PREFIX):
                            value = base64.b64decode(event["kv"].get("value", "")).decode()
                            address, mac, vtep = value.split()
                            neigh.append(
                                f"neigh replace {address} lladdr {mac} dev {REF_DEV} nud permanent\n"
                            )
                            fdb.append(
                                f"fdb replace {mac} dev {REF_DEV} dst {vtep} self permanent\n"
                            )
                        lines.append(f"{t} {kind} {key}\n")
                    if neigh:
                        ip.stdin.write("".join(neigh))
                        ip.stdin.flush()
                        bridge.stdin.write("".join(fdb))
                        bridge.stdin.flush()
                    out.write("".join(lines))
                    out.flush()
    except KeyboardInterrupt:
        return 0
    finally:
        for process in (ip, bridge):
            with contextlib.suppress(OSError):
                assert process.stdin is not None
                process.stdin.close()
            terminate(process, 5.0)
    return 1


def agent_put(_argv: Sequence[str]) -> int:
    """Read {"puts": [[key, value], ...]} lines; put each, answer {"sent": [...], "done": [...]}."""
    handle_sigterm()
    try:
        with httpx.Client(timeout=30.0) as client:
            _wait_etcd(client)
            print("ready", flush=True)
            for line in sys.stdin:
                request = json.loads(line)
                sent, done = [], []
                try:
                    for key, value in request["puts"]:
                        sent.append(time.monotonic_ns())
                        response = client.post(
                            f"{ETCD_URL}/v3/kv/put", json={"key": _b64(key), "value": _b64(value)}
                        )
                        response.raise_for_status()
                        done.append(time.monotonic_ns())
                except httpx.HTTPError as exc:
                    print(json.dumps({"error": str(exc)}), flush=True)
                    continue
                print(json.dumps({"sent": sent, "done": done}), flush=True)
    except KeyboardInterrupt:
        pass
    return 0


# --- the rig ---------------------------------------------------------------------------------


@dataclass
class Rig:
    """Everything the measurements use; built by `build_rig`, torn down by its ExitStack."""

    fabric: Netns
    hosts: dict[str, Netns]
    ref: Netns
    daemons: dict[str, Daemon]
    kernels: dict[str, KernelWatch]  # "a", "b" and "ref"
    vx: dict[str, int]  # vx-42's ifindex per host
    ref_ifindex: int  # vx-ref in the reference netns
    watch: WatchAgent
    putter: PutAgent
    plan: AddressPlan


def underlay_ip(host: str) -> str:
    return f"10.99.0.{HOST_NUMBERS[host]}"


def build_rig(stack: contextlib.ExitStack, workdir: Path, extra: Sequence[str]) -> Rig:
    """Namespaces, underlay, etcd, the two daemons and their network, watchers and agents.

    Every piece is pushed on `stack` right after it exists, processes after namespaces,
    so unwinding stops the processes before it deletes the namespaces they run in.
    """
    fabric = Netns("etcd")
    stack.callback(fabric.close)
    hosts: dict[str, Netns] = {}
    for name in HOST_NUMBERS:
        hosts[name] = Netns(f"h{name}")
        stack.callback(hosts[name].close)
    fabric.ip("link", "add", "ulbr", "type", "bridge")
    fabric.ip("addr", "add", f"{ETCD_IP}/24", "dev", "ulbr")
    fabric.ip("link", "set", "ulbr", "up")
    for name, number in HOST_NUMBERS.items():
        port = f"ul-{number}"
        fabric.ip(
            "link", "add", port, "type", "veth", "peer", "name", "ul0", "netns", hosts[name].name
        )
        fabric.ip("link", "set", port, "master", "ulbr")
        fabric.ip("link", "set", port, "up")
        hosts[name].ip("addr", "add", f"{underlay_ip(name)}/24", "dev", "ul0")
        hosts[name].ip("link", "set", "ul0", "up")

    etcd_log = (workdir / "etcd.log").open("wb")
    stack.callback(etcd_log.close)
    etcd = subprocess.Popen(
        tied(fabric.exec_argv(*etcd_command(workdir / "etcd-data"))),
        stdout=etcd_log, stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip
    stack.callback(terminate, etcd)
    # The put agent waits for etcd's /health from host A: etcd is up and reachable.
    putter = PutAgent(hosts["a"], workdir / "agent-put.log")
    stack.callback(putter.close)
    print(f"etcd up at {ETCD_URL} in {fabric.name}", file=sys.stderr, flush=True)

    daemons: dict[str, Daemon] = {}
    for name, host in hosts.items():
        daemons[name] = Daemon(host, f"host{name}", workdir / f"daemon-{name}", extra)
        stack.callback(daemons[name].stop)
    for name, daemon in daemons.items():
        daemon.create_network(underlay_ip(name))
    vx = {
        name: int(host.exec("cat", f"/sys/class/net/{VXLAN}/ifindex"))
        for name, host in hosts.items()
    }
    # The reference's vxlan device sits in a netns of its own, so that neither daemon B
    # nor its table dumps see the reference's entries (and vice versa).
    ref = Netns("ref")
    stack.callback(ref.close)
    ref.ip(
        "link", "add", REF_DEV, "type", "vxlan", "id", str(REF_VNI),
        "dstport", "4789", "nolearning",
    )  # fmt: skip
    ref.ip("link", "set", REF_DEV, "up")
    ref_ifindex = int(ref.exec("cat", f"/sys/class/net/{REF_DEV}/ifindex"))

    kernels: dict[str, KernelWatch] = {}
    for name, netns in (*hosts.items(), ("ref", ref)):
        kernels[name] = KernelWatch(netns.name)
        stack.callback(kernels[name].close)
    watch = WatchAgent(hosts["b"], ref, workdir / "agent-watch.log")
    stack.callback(watch.close)
    return Rig(fabric, hosts, ref, daemons, kernels, vx, ref_ifindex, watch, putter, AddressPlan())


# --- 1. one endpoint at a time ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """One endpoint (or reference record), ns: start -> both entries on B, and the legs."""

    total: int  # call start (put) -> both entries on B
    call: int  # CreateEndpoint round trip (reference: put round trip)
    event: int | None  # call start (put) -> key event at B (None: the watcher missed it)

    @property
    def apply(self) -> int | None:
        """Key event at B -> both entries on B."""
        return None if self.event is None else self.total - self.event


@dataclass
class Sequential:
    count: int
    ours: list[Sample] = field(default_factory=list)
    ref: list[Sample] = field(default_factory=list)
    ours_lost: int = 0
    ref_lost: int = 0


def measure_sequential(rig: Rig, count: int, gap: float) -> Sequential:
    """Alternately one reference record and one endpoint, each waited for on B.

    A's endpoints stay until the end, so endpoint k is created on a host that already
    holds k - 1 of them (and B's tables hold their entries).
    """
    result = Sequential(count)
    created: list[Endpoint] = []
    b = rig.kernels["b"]
    try:
        for i in range(WARMUP + count):
            keep = i >= WARMUP
            ref = rig.plan.new("ref")
            (sent,), (acked,) = rig.putter.put([ref], underlay_ip("a"))
            done = rig.kernels["ref"].programmed(rig.ref_ifindex, [ref], WAIT_S)
            watched = rig.watch.put_seen(ref.ref_key, 2.0)
            if keep and done is None:
                result.ref_lost += 1
            elif keep and done is not None:
                event = None if watched is None else watched - sent
                result.ref.append(Sample(done - sent, acked - sent, event))
            time.sleep(gap)

            ep = rig.plan.new("a")
            start = time.monotonic_ns()
            rig.daemons["a"].create_endpoint(ep)
            returned = time.monotonic_ns()
            created.append(ep)
            done = b.programmed(rig.vx["b"], [ep], WAIT_S)
            watched = rig.watch.put_seen(ep.key, 2.0)
            if keep and done is None:
                result.ours_lost += 1
            elif keep and done is not None:
                event = None if watched is None else watched - start
                result.ours.append(Sample(done - start, returned - start, event))
            time.sleep(gap)
            if keep and (i - WARMUP + 1) % 25 == 0:
                print(
                    f"  {i - WARMUP + 1}/{count}: last 25 p50 ours "
                    f"{p50_ms([s.total for s in result.ours[-25:]])} ms, reference "
                    f"{p50_ms([s.total for s in result.ref[-25:]])} ms",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        remove_endpoints(rig, created)
    return result


def remove_endpoints(rig: Rig, eps: Sequence[Endpoint]) -> float | None:
    """DeleteEndpoint back to back on A; seconds until B dropped every entry (None: it did not)."""
    if not eps:
        return 0.0
    start = time.monotonic_ns()
    for ep in eps:
        rig.daemons["a"].remove(ep)
    gone = rig.kernels["b"].gone(rig.vx["b"], eps, BURST_WAIT_S)
    return None if gone is None else (gone - start) / 1e9


def p50_ms(values: Sequence[int]) -> str:
    found = summarize(ns_to_ms(values))
    return "-" if found is None else f"{found.p50:.2f}"


# --- 2. bursts -------------------------------------------------------------------------------


@dataclass
class Burst:
    n: int
    ref_puts_done: float  # s, first put -> last put acknowledged
    ref_all: float | None  # s, first put -> every entry on B (None: not all)
    ref_each: list[int]
    ours_calls_done: float  # s, first call -> last call returned
    ours_in_etcd: float | None  # s, first call -> last key event at B
    ours_all: float | None  # s, first call -> every entry on B
    ours_each: list[int]  # per endpoint: its own call start -> its entries on B
    ours_missing: int
    removal: float | None  # s, first DeleteEndpoint -> every entry gone from B


def measure_burst(rig: Rig, n: int) -> Burst:
    b = rig.kernels["b"]
    refs = [rig.plan.new("ref") for _ in range(n)]
    sent, acked = rig.putter.put(refs, underlay_ip("a"))
    ref_done = rig.kernels["ref"].programmed(rig.ref_ifindex, refs, BURST_WAIT_S)
    ref_each = [
        stamp - s
        for ep, s in zip(refs, sent, strict=True)
        if (stamp := rig.kernels["ref"].programmed_at(rig.ref_ifindex, ep)) is not None
    ]
    time.sleep(0.5)

    eps = [rig.plan.new("a") for _ in range(n)]
    starts, ends = [], []
    try:
        for ep in eps:
            starts.append(time.monotonic_ns())
            rig.daemons["a"].create_endpoint(ep)
            ends.append(time.monotonic_ns())
        ours_done = b.programmed(rig.vx["b"], eps, BURST_WAIT_S)
        in_etcd = rig.watch.seen.wait_all([("PUT", ep.key) for ep in eps], 5.0)
        each = [
            stamp - s
            for ep, s in zip(eps, starts, strict=True)
            if (stamp := b.programmed_at(rig.vx["b"], ep)) is not None
        ]
    finally:
        time.sleep(0.5)
        removal = remove_endpoints(rig, eps[: len(starts)])
    return Burst(
        n=n,
        ref_puts_done=(acked[-1] - sent[0]) / 1e9,
        ref_all=None if ref_done is None else (ref_done - sent[0]) / 1e9,
        ref_each=ref_each,
        ours_calls_done=(ends[-1] - starts[0]) / 1e9,
        ours_in_etcd=None if in_etcd is None else (in_etcd - starts[0]) / 1e9,
        ours_all=None if ours_done is None else (ours_done - starts[0]) / 1e9,
        ours_each=each,
        ours_missing=n - len(each),
        removal=removal,
    )


# --- 3. first ping ---------------------------------------------------------------------------

_PING = re.compile(r"icmp_seq=(\d+) .*time=([\d.]+) ms")


@dataclass
class PingTrial:
    mode: str
    first: float | None  # ms; None: no reply
    second: float | None
    b_had_entries: bool  # B's kernel held A's entries before the ping started


def plumb(rig: Rig, host: str, container: Netns, ep: Endpoint) -> None:
    """CreateEndpoint + Join, then Docker's part: move the veth end in, name it, address it."""
    daemon, netns = rig.daemons[host], rig.hosts[host]
    daemon.create_endpoint(ep)
    source = daemon.join(ep)
    netns.ip("link", "set", source, "netns", container.name)
    container.ip("link", "set", source, "name", "eth0")
    container.ip("addr", "add", f"{ep.ip}/16", "dev", "eth0")
    container.ip("link", "set", "eth0", "up")


def ping_twice(container: Netns, ip: str) -> tuple[float | None, float | None]:
    out = run(
        container.exec_argv("ping", "-n", "-c", "2", "-i", "0.2", "-W", "3", "-w", "5", ip),
        check=False,
    )
    rtts = {int(m.group(1)): float(m.group(2)) for m in _PING.finditer(out)}
    return rtts.get(1), rtts.get(2)


def ping_trial(rig: Rig, mode: str) -> PingTrial:
    """A new endpoint pair with a container each; B's first, then A's, then A pings B."""
    with contextlib.ExitStack() as stack:
        ep_b, ep_a = rig.plan.new("b"), rig.plan.new("a")
        container_b = Netns("cb")
        stack.callback(container_b.close)
        stack.callback(rig.daemons["b"].remove, ep_b, joined=True)
        plumb(rig, "b", container_b, ep_b)
        if rig.kernels["a"].programmed(rig.vx["a"], [ep_b], WAIT_S) is None:
            raise BenchError(f"B's endpoint {ep_b.ip} never reached A")
        container_a = Netns("ca")
        stack.callback(container_a.close)
        stack.callback(rig.daemons["a"].remove, ep_a, joined=True)
        plumb(rig, "a", container_a, ep_a)
        if mode == "settled" and rig.kernels["b"].programmed(rig.vx["b"], [ep_a], WAIT_S) is None:
            raise BenchError(f"A's endpoint {ep_a.ip} never reached B")
        before = time.monotonic_ns()
        at_b = rig.kernels["b"].programmed_at(rig.vx["b"], ep_a)
        had = at_b is not None and at_b <= before
        first, second = ping_twice(container_a, ep_b.ip)
    return PingTrial(mode, first, second, had)


def measure_pings(rig: Rig, trials: int) -> list[PingTrial]:
    for mode in ("settled", "immediate"):  # warm-up: underlay ARP, first Join, first ping
        ping_trial(rig, mode)
    results = []
    for k in range(trials):
        for mode in ("settled", "immediate"):
            results.append(ping_trial(rig, mode))
        print(
            f"  ping trial {k + 1}/{trials}: "
            + ", ".join(f"{t.mode} {t.first}/{t.second} ms" for t in results[-2:]),
            file=sys.stderr,
            flush=True,
        )
    return results


# --- report ----------------------------------------------------------------------------------


def _cells(values: Sequence[int]) -> list[str]:
    found = summarize(ns_to_ms(values))
    return [str(len(values)), format_ms(found)]


def _ratio_cell(ours: Sequence[int] | Sequence[float], ref: Sequence[int] | Sequence[float]) -> str:
    a, b = summarize([float(v) for v in ours]), summarize([float(v) for v in ref])
    if a is None or b is None:
        return "-"
    return f"{ratio(a.p50, b.p50):.1f}x / {ratio(a.p99, b.p99):.1f}x"


def _seconds(value: float | None) -> str:
    return "not all" if value is None else f"{value:.3f}"


def _legs(samples: Sequence[Sample]) -> tuple[list[int], list[int], list[int], list[int]]:
    events = [s.event for s in samples if s.event is not None]
    applies = [a for s in samples if (a := s.apply) is not None]
    return [s.total for s in samples], [s.call for s in samples], events, applies


def report(seq: Sequential, bursts: Sequence[Burst], pings: Sequence[PingTrial]) -> str:
    lines = [
        f"1. Endpoint created on A -> FDB + neighbour entry on B, one at a time, ms "
        f"(n={seq.count} each, after {WARMUP} warm-ups; lost: ours {seq.ours_lost}, "
        f"reference {seq.ref_lost}):",
    ]
    total, call, event, apply = _legs(seq.ours)
    ref_total, ref_call, ref_event, ref_apply = _legs(seq.ref)
    rows = [
        ["ours: CreateEndpoint on A -> both entries on B", *_cells(total)],
        ["  CreateEndpoint round trip", *_cells(call)],
        ["  call start -> key event at B (etcd watch)", *_cells(event)],
        ["  key event at B -> both entries on B", *_cells(apply)],
        ["reference: put on A -> both entries on B", *_cells(ref_total)],
        ["  put round trip", *_cells(ref_call)],
        ["  put -> watch event at B (raw etcd)", *_cells(ref_event)],
        ["  watch event -> both entries (ip/bridge -batch)", *_cells(ref_apply)],
    ]
    lines.append(format_table(["path", "n", "p50/p99/max"], rows))
    if total and ref_total:
        lines.append(
            f"ratio ours / reference (-> both entries), p50 / p99: {_ratio_cell(total, ref_total)}"
        )
    if total and ref_event:
        lines.append(
            f"ratio ours / raw etcd put -> watch event, p50 / p99: {_ratio_cell(total, ref_event)}"
        )
    quarter = max(len(seq.ours) // 4, 1)
    rows = []
    for first in range(0, len(seq.ours), quarter):
        part = seq.ours[first : first + quarter]
        held = f"{first + WARMUP}-{first + WARMUP + len(part) - 1}"
        total, call, event, apply = _legs(part)
        refs = [s.total for s in seq.ref[first : first + quarter]]
        rows.append(
            [
                held,
                p50_ms(total),
                p50_ms(call),
                p50_ms(event),
                p50_ms(apply),
                p50_ms(refs),
            ]
        )
    header = [
        "A's endpoints before", "ours", "call", "-> key event", "event -> entries",
        "reference",
    ]  # fmt: skip
    lines += ["p50 by position, ms:", format_table(header, rows)]

    lines += ["", "2. Burst: N created back to back on A -> all programmed on B, seconds:"]
    rows = []
    for k, burst in enumerate(bursts, 1):
        rows.append(
            [
                f"{k}",
                f"{burst.n}",
                _seconds(burst.ref_puts_done),
                _seconds(burst.ref_all),
                _seconds(burst.ours_calls_done),
                _seconds(burst.ours_in_etcd),
                _seconds(burst.ours_all),
                f"{ratio(burst.ours_all, burst.ref_all):.1f}x"
                if burst.ours_all is not None and burst.ref_all is not None
                else "-",
                format_ms(summarize(ns_to_ms(burst.ref_each))),
                format_ms(summarize(ns_to_ms(burst.ours_each))),
                _seconds(burst.removal),
            ]
        )
    header = [
        "round", "N", "ref: puts done", "ref: all on B", "ours: calls done",
        "ours: all in etcd", "ours: all on B", "ratio all on B", "ref each ms",
        "ours each ms", "ours: removal, all gone",
    ]  # fmt: skip
    lines.append(format_table(header, rows))
    lines.append(
        "(each ms = one endpoint's own call start / put -> its entries on B, p50/p99/max; "
        "removal = DeleteEndpoint x N back to back -> every entry gone from B)"
    )
    missing = sum(b.ours_missing for b in bursts)
    if missing:
        lines.append(f"endpoints never programmed on B in a burst: {missing}")

    lines += ["", "3. First vs second ping, container behind A -> container behind B, RTT ms:"]
    rows = []
    for mode, what in (
        ("settled", "entries on both hosts before the ping"),
        ("immediate", "ping right after A's Join + plumbing"),
    ):
        trials = [t for t in pings if t.mode == mode]
        firsts = [t.first for t in trials if t.first is not None]
        seconds = [t.second for t in trials if t.second is not None]
        first_s, second_s = summarize(firsts), summarize(seconds)
        rows.append(
            [
                f"{mode} ({what})",
                f"{len(trials)}",
                f"{sum(t.b_had_entries for t in trials)}",
                format_ms(first_s),
                format_ms(second_s),
                _ratio_cell(firsts, seconds),
                f"{sum(t.first is None for t in trials)}/{sum(t.second is None for t in trials)}",
            ]
        )
    header = [
        "trial kind", "n", "B had A's entries", "first p50/p99/max", "second p50/p99/max",
        "ratio first/second p50 / p99", "lost first/second",
    ]  # fmt: skip
    lines.append(format_table(header, rows))
    return "\n".join(lines)


# --- main ------------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="50 endpoints, one burst, 5 trials")
    parser.add_argument("--count", type=int, help="endpoints one at a time (default 200, quick 50)")
    parser.add_argument("--burst", type=int, help="endpoints per burst (default 100, quick 50)")
    parser.add_argument("--burst-rounds", type=int, help="bursts (default 1)")
    parser.add_argument("--trials", type=int, help="ping trials per kind (default 20, quick 5)")
    parser.add_argument(
        "--gap", type=float, default=0.05, help="pause after each one-at-a-time endpoint (s)"
    )
    parser.add_argument(
        "--daemon-arg", action="append", default=[], help="extra `serve` flag (repeatable)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the work dir (logs)")
    parser.add_argument(
        "--remove-stale", action="store_true", help="first delete leftover vxevt-b-* namespaces"
    )
    args = parser.parse_args(argv)
    defaults = (50, 50, 1, 5) if args.quick else (200, 100, 1, 20)
    for name, default in zip(("count", "burst", "burst_rounds", "trials"), defaults, strict=True):
        if getattr(args, name) is None:
            setattr(args, name, default)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    agents: dict[str, Callable[[Sequence[str]], int]] = {
        "agent-watch": agent_watch,
        "agent-put": agent_put,
    }
    if argv and argv[0] in agents:
        return agents[argv[0]](argv[1:])
    args = parse_args(argv)

    def body(workdir: Path) -> str:
        with contextlib.ExitStack() as stack:
            rig = build_rig(stack, workdir, args.daemon_arg)
            print(
                f"rig: A {rig.hosts['a'].name}, B {rig.hosts['b'].name}, etcd {rig.fabric.name}",
                file=sys.stderr,
                flush=True,
            )
            print(f"1. {args.count} endpoints one at a time", file=sys.stderr, flush=True)
            seq = measure_sequential(rig, args.count, args.gap)
            bursts = []
            for k in range(args.burst_rounds):
                print(f"2. burst {k + 1}/{args.burst_rounds} of {args.burst}", file=sys.stderr)
                bursts.append(measure_burst(rig, args.burst))
            print(f"3. {args.trials} ping trials per kind", file=sys.stderr, flush=True)
            pings = measure_pings(rig, args.trials)
            overflows = {name: k.overflows for name, k in rig.kernels.items() if k.overflows}
        if overflows:
            print(f"warning: netlink watcher overflowed: {overflows}", file=sys.stderr)
        return report(seq, bursts, pings)

    return run_bench("prop", args, body, needs=("etcd",), failures=(BenchError, RigError))


if __name__ == "__main__":
    sys.exit(main())
