"""A real single-member etcd for tests: 127.0.0.1 by default, free ports, a private temp data dir.

`EtcdServer` can be stopped (SIGTERM), killed (SIGKILL) and started again on the same
data dir and ports, so tests can take etcd away for a while and bring it back.
`EtcdServer(netns=NS, address=IP)` runs it inside network namespace NS instead, serving
clients on IP (e.g. a lab fabric's own address, `Fabric.bridge_address()`, so that every lab
host reaches it over its underlay); the health probe then runs inside NS too.
The pytest fixture `etcd_server` lives in `tests/fixtures/etcd.py`.
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

START_TIMEOUT = 15.0
STOP_TIMEOUT = 10.0
# run by this interpreter inside a netns: exit 0 when etcd's /health (argv[1]) says true
HEALTH_PROBE = (
    "import sys, urllib.request as r\n"
    "with r.urlopen(sys.argv[1] + '/health', timeout=1) as reply:\n"
    '    sys.exit(0 if b\'"health":"true"\' in reply.read() else 1)\n'
)


class EtcdServerError(RuntimeError):
    """etcd did not start or stop as asked; the message carries the tail of its log."""


def free_port() -> int:
    """A port nobody listens on right now (etcd binds it a moment later; races are unlikely)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class EtcdServer:
    """One etcd process; `start()` again after `stop()`/`kill()` reuses data dir and ports.

    `netns`: run inside that network namespace (`ip netns exec`), serving clients on
    `address` (default 127.0.0.1); ports default to free ones of the root netns, which are
    as good as any in a fresh namespace. Peer traffic stays on the namespace's loopback.
    """

    def __init__(
        self,
        binary: str = "etcd",
        base_dir: Path | None = None,
        *,
        netns: str | None = None,
        address: str = "127.0.0.1",
        client_port: int | None = None,
        peer_port: int | None = None,
    ) -> None:
        self.binary = binary
        # not `netns`/`address`: subclasses (tests/integration) use those names themselves
        self.listen_netns, self.listen_address = netns, address
        self._own_dir = base_dir is None
        self.base_dir = (
            Path(tempfile.mkdtemp(prefix="vxevt-etcd-")) if base_dir is None else base_dir
        )
        self.data_dir = self.base_dir / "data"
        self.log_path = self.base_dir / "etcd.log"
        self.client_port = client_port or free_port()
        self.peer_port = peer_port or free_port()
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.listen_address}:{self.client_port}"

    def command(self) -> list[str]:
        peer = f"http://127.0.0.1:{self.peer_port}"
        enter = ["ip", "netns", "exec", self.listen_netns] if self.listen_netns else []
        return [
            *enter,
            self.binary,
            "--name=vxevt-test",
            f"--data-dir={self.data_dir}",
            f"--listen-client-urls={self.url}",
            f"--advertise-client-urls={self.url}",
            f"--listen-peer-urls={peer}",
            f"--initial-advertise-peer-urls={peer}",
            f"--initial-cluster=vxevt-test={peer}",
            "--initial-cluster-state=new",
            # A single member elects itself after one election timeout: keep startup fast.
            "--heartbeat-interval=10",
            "--election-timeout=100",
            "--logger=zap",
            "--log-outputs=stderr",
        ]

    def start(self) -> None:
        """Start etcd and wait until /health says true (bounded; the log tail on failure)."""
        if self.process is not None and self.process.poll() is None:
            raise EtcdServerError("etcd is already running")
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                self.command(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise EtcdServerError(
                    f"etcd exited with {self.process.returncode}\n{self.log_tail()}"
                )
            if self.healthy():
                return
            time.sleep(0.05)
        self.kill()
        raise EtcdServerError(f"etcd not healthy after {START_TIMEOUT} s\n{self.log_tail()}")

    def healthy(self) -> bool:
        if self.listen_netns is not None:
            argv = ["ip", "netns", "exec", self.listen_netns, sys.executable, "-c", HEALTH_PROBE]
            try:
                probe = subprocess.run([*argv, self.url], capture_output=True, timeout=5)
            except subprocess.TimeoutExpired:
                return False
            return probe.returncode == 0
        try:
            with urllib.request.urlopen(self.url + "/health", timeout=1) as response:
                return b'"health":"true"' in response.read()
        except (urllib.error.URLError, OSError):
            return False

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if etcd has not exited within STOP_TIMEOUT."""
        self._signal(signal.SIGTERM, STOP_TIMEOUT)

    def kill(self) -> None:
        """SIGKILL: a crash, with no graceful close of client streams."""
        self._signal(signal.SIGKILL, STOP_TIMEOUT)

    def _signal(self, signum: signal.Signals, timeout: float) -> None:
        process = self.process
        if process is None or process.poll() is not None:
            return
        process.send_signal(signum)
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def close(self) -> None:
        """Stop etcd and remove its data dir (only a dir this object created)."""
        try:
            self.stop()
        finally:
            if self._own_dir:
                shutil.rmtree(self.base_dir, ignore_errors=True)

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no etcd log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> EtcdServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def find_etcd() -> str | None:
    return shutil.which("etcd")
