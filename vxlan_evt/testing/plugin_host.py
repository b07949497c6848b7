"""A lab host running dockerd and our plugin (`python -m vxlan_evt serve`) on its default socket."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from vxlan_evt.testing.lab import LabHost

REPO = Path(__file__).resolve().parents[2]


@dataclass
class PluginHost:
    """A lab host running dockerd and our plugin on its default socket."""

    host: LabHost
    log_path: Path
    state_dir: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str) -> None:
        argv = [
            sys.executable,
            "-m",
            "vxlan_evt",
            "serve",
            "-d",
            "--state-dir",
            str(self.state_dir),
        ]
        self.process = self.host.spawn([*argv, *extra], self.log_path, cwd=REPO)
        self.host.wait_for_plugin(proc=self.process, log_path=self.log_path)

    def stop(self) -> int:
        assert self.process is not None
        status = self.host.stop_process(self.process)
        self.process = None
        return status

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-3000:]

    def container_ip(self, name: str) -> str:
        return container_ip(self.host, name)

    def owned_links(self) -> list[str]:
        return owned_links(self.host)


def container_ip(host: LabHost, name: str, network: str = "vxlan42") -> str:
    """The IPv4 address Docker gave container `name` on `network`."""
    inspect = host.docker("inspect", name).stdout
    networks = json.loads(inspect)[0]["NetworkSettings"]["Networks"]
    return str(networks[network]["IPAddress"])


def owned_links(host: LabHost) -> list[str]:
    """Names of the links on `host` that carry our ownership mark."""
    out = host.run(["ip", "-d", "-o", "link"]).stdout
    return [line.split(":")[1].strip() for line in out.splitlines() if "vxlan-evt" in line]


def assert_ping(host: LabHost, container: str, address: str) -> None:
    """`container` (on `host`'s dockerd) reaches `address`; the ping output if not."""
    result = host.docker("exec", container, "ping", "-c", "2", "-W", "2", address, check=False)
    assert result.returncode == 0, f"{container} -> {address}:\n{result.stdout}{result.stderr}"
