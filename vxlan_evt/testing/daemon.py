"""Run the real `vxlan-evt serve` inside a test network namespace and talk to it."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import httpx

from vxlan_evt.testing.netns import VxlanHost


class DaemonProcess:
    """One daemon process in `netns`, with its socket and state under `workdir`."""

    def __init__(self, netns: str, workdir: Path, *extra_args: str) -> None:
        self.netns = netns
        self.socket = workdir / "plugins" / "vxlan.sock"
        self.state_dir = workdir / "state"
        self.api_socket = workdir / "api.sock"
        self.log_path = workdir / "daemon.log"
        self.extra_args = extra_args
        self.process: subprocess.Popen[bytes] | None = None

    def argv(self) -> list[str]:
        return [
            "ip", "netns", "exec", self.netns,
            sys.executable, "-m", "vxlan_evt", "serve", "-d",
            "--plugin-socket", str(self.socket),
            "--state-dir", str(self.state_dir),
            "--api-socket", str(self.api_socket),
            *self.extra_args,
        ]  # fmt: skip

    def run_until_exit(self, timeout: float = 20.0) -> int:
        """For a daemon that must refuse to start: its exit status (subprocess's
        TimeoutExpired, after killing it, if it still runs after `timeout`)."""
        with self.log_path.open("ab") as log:
            process = subprocess.run(
                self.argv(), stdout=log, stderr=subprocess.STDOUT, timeout=timeout, check=False
            )
        return process.returncode

    def start(self, timeout: float = 20.0) -> DaemonProcess:
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(self.argv(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"daemon exited early:\n{self.log()}")
            if self._accepting() and self.call("Plugin.Activate")[0] == 200:
                return self
            time.sleep(0.05)
        raise TimeoutError(f"daemon not ready after {timeout}s:\n{self.log()}")

    def _accepting(self) -> bool:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            try:
                probe.connect(str(self.socket))
            except OSError:
                return False
        return True

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def call(self, method: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
        transport = httpx.HTTPTransport(uds=str(self.socket))
        with httpx.Client(transport=transport, timeout=30.0) as client:
            response = client.post(
                f"http://plugin/{method}", content=json.dumps(body or {}).encode()
            )
        return response.status_code, response.json()

    def get(self, resource: str, **params: str) -> Any:
        """GET a resource of the observe API; NDJSON comes back as a list."""
        transport = httpx.HTTPTransport(uds=str(self.api_socket))
        with httpx.Client(transport=transport, timeout=30.0) as client:
            response = client.get(f"http://observe/{resource}", params=params)
        assert response.status_code == 200, f"{resource} -> {response.status_code} {response.text}"
        if resource == "events":
            return [json.loads(line) for line in response.text.splitlines() if line]
        return response.json() if resource != "metrics" else response.text

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run a `vxlan-evt` troubleshooting verb against this daemon's observe API."""
        argv = [sys.executable, "-m", "vxlan_evt", *args, "--api-socket", str(self.api_socket)]
        result = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} -> {result.returncode}: {result.stderr}")
        return result

    def ok(self, method: str, body: dict[str, Any] | None = None) -> Any:
        status, document = self.call(method, body)
        assert status == 200, f"{method} -> {status} {document}\n{self.log()}"
        return document

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 20.0) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        try:
            return self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
            raise


T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05) -> T:
    """Poll until `predicate()` is truthy or `timeout` passes; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


NETWORK_ID = "d" * 64  # the network `join_container` joins; tests create it under this ID


def join_container(host: VxlanHost, daemon: DaemonProcess, endpoint_id: str) -> None:
    """CreateEndpoint + Join, then do Docker's part: move the interface, address it."""
    created = daemon.ok(
        "NetworkDriver.CreateEndpoint",
        {
            "NetworkID": NETWORK_ID,
            "EndpointID": endpoint_id,
            "Interface": {"Address": f"{host.container_ip}/24", "MacAddress": host.container_mac},
        },
    )
    assert created == {}
    joined = daemon.ok("NetworkDriver.Join", {"NetworkID": NETWORK_ID, "EndpointID": endpoint_id})
    source = joined["InterfaceName"]["SrcName"]
    host.host.ip("link", "set", source, "netns", host.container.name)
    host.container.ip("link", "set", source, "name", "eth0")
    host.container.ip("addr", "add", f"{host.container_ip}/24", "dev", "eth0")
    host.container.ip("link", "set", "eth0", "up")
    host.container.ip("link", "set", "lo", "up")
