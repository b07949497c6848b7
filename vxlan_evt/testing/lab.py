"""Lab hosts: several independent "machines" on one box, each with its own isolated dockerd.

A `LabHost` is a network namespace plus a private mount namespace, kept alive by a holder
process (`sleep infinity`). Every command of the host (`run`, `spawn`, dockerd, the docker CLI,
our plugin) enters *both* namespaces with `nsenter --target HOLDER --mount --net`, so they all
see the same links and the same files:

* `/sys` is a sysfs of the host's netns (so `/sys/class/net` matches `ip link`), with the
  machine's cgroup hierarchies moved back under `/sys/fs/cgroup` (dockerd 20.10 refuses to
  start without the devices cgroup: "Devices cgroup isn't mounted").
* `/run` is a bind of `<dir>/run`: `/run/docker/plugins` (where Docker discovers legacy
  plugins) is private to this host, and the test sees a plugin's socket from outside at
  `host.plugin_socket("vxlan")`. containerd's shim sockets (`/run/containerd/s`) land there too.
* `/etc/docker` is a bind of `<dir>/etc-docker`: no host daemon.json, key.json or plugin specs.

All mounts live only in the private mount namespace, so they vanish with its last process;
`close()` kills every process of the host (netns, mount ns, Docker's cgroup parent) and
deletes the namespace even after failures.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Any

from vxlan_evt.testing.labowner import OwnerRecord, teardown_namespace
from vxlan_evt.testing.labsys import (
    LAB_PREFIX,
    NETNS_DIR,
    LabError,
    comm_of,
    command_env,
    default_base_dir,
    default_docker_cli,
    file_tail,
    in_cgroup,
    in_ns,
    kill_matching,
    mounts_of,
    netns_identity,
    ns_of,
    pinned_holder_mnt,
    process_start,
    run_cmd,
    stop_popen,
    terminate_pid,
)

NAME_RE = re.compile(r"[a-z][a-z0-9]{0,9}")
DOCKER_DAEMON_COMMS = {"dockerd", "containerd", "containerd-shim", "runc", "docker-proxy"}


class LabHost:
    """One simulated machine; see the module docstring. Use as a context manager or `close()`.

    `name` is short ([a-z][a-z0-9]{0,9}): it goes into the netns name and into paths under
    which unix sockets live (108-byte limit). `log_dir` (default inside the host's dir, which
    `close()` removes) receives dockerd.log; point it at pytest's tmp_path to keep logs.
    `persistent` hosts (tools/lab) survive their creator; `cleanup_stale()` leaves them alone.
    """

    def __init__(
        self,
        name: str,
        *,
        base_dir: Path | None = None,
        log_dir: Path | None = None,
        docker_cli: str | None = None,
        persistent: bool = False,
    ) -> None:
        if not NAME_RE.fullmatch(name):
            raise ValueError(f"lab host name {name!r} must match {NAME_RE.pattern}")
        netns = f"{LAB_PREFIX}{name}-{secrets.token_hex(3)}"
        lab_dir = (base_dir or default_base_dir()) / netns
        record = OwnerRecord.for_current_process(netns, persistent=persistent)
        self._init(name, lab_dir, record, log_dir, docker_cli)
        self.dir.mkdir(parents=True)
        record.save(self.dir)  # before the netns exists: see labsys.cleanup_stale
        try:
            self._create()
        except BaseException:
            with contextlib.suppress(Exception):
                self.close()
            raise

    def _init(
        self,
        name: str,
        lab_dir: Path,
        record: OwnerRecord,
        log_dir: Path | None,
        docker_cli: str | None,
    ) -> None:
        self.name = name
        self.netns = record.netns
        self.dir = lab_dir
        self.log_dir = log_dir or lab_dir / "logs"
        self.docker_cli = docker_cli or default_docker_cli()
        self.holder: subprocess.Popen[bytes] | None = None  # None when adopted
        self.dockerd: subprocess.Popen[bytes] | None = None
        self.spawned: list[subprocess.Popen[bytes]] = []
        self._record = record
        self._closed = False

    @classmethod
    def adopt(cls, lab_dir: Path, *, docker_cli: str | None = None) -> LabHost:
        """Take over a host another process created (tools/lab `exec`/`down`), from its record."""
        record = OwnerRecord.load(lab_dir)
        if record is None or not record.holder_alive():
            raise LabError(f"{lab_dir}: no live lab host recorded there")
        host = cls.__new__(cls)
        name = record.netns.removeprefix(LAB_PREFIX).rsplit("-", 1)[0]
        host._init(name, lab_dir, record, None, docker_cli)
        return host

    def __repr__(self) -> str:
        return f"LabHost({self.name!r}, netns={self.netns!r}, holder={self._record.holder_pid})"

    def __enter__(self) -> LabHost:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # --- paths (as seen from outside the host) --------------------------------------------

    @property
    def holder_pid(self) -> int:
        if self._record.holder_pid is None:
            raise LabError(f"[{self.name}] has no holder process")
        return self._record.holder_pid

    @property
    def docker_host(self) -> str:
        return f"unix://{self.dir}/docker.sock"

    @property
    def data_root(self) -> Path:
        return self.dir / "data"

    @property
    def exec_root(self) -> Path:
        return self.dir / "exec"

    @property
    def run_dir(self) -> Path:
        """Mounted on the host's /run."""
        return self.dir / "run"

    @property
    def plugins_dir(self) -> Path:
        """The host's /run/docker/plugins, seen from outside."""
        return self.run_dir / "docker" / "plugins"

    @property
    def dockerd_log(self) -> Path:
        return self.log_dir / "dockerd.log"

    def plugin_socket(self, driver: str = "vxlan") -> Path:
        """Outside path of /run/docker/plugins/<driver>.sock; connect to it from the test."""
        return self.plugins_dir / f"{driver}.sock"

    # --- creation ---------------------------------------------------------------------------

    def _create(self) -> None:
        run_cmd(["ip", "netns", "add", self.netns])
        run_cmd(["ip", "-n", self.netns, "link", "set", "lo", "up"])
        self.log_dir.mkdir(parents=True, exist_ok=True)
        holder_argv = ["unshare", "--mount", "--propagation", "private"]
        holder_argv += ["nsenter", f"--net={NETNS_DIR / self.netns}", "--", "sleep", "infinity"]
        with (self.log_dir / "holder.log").open("ab") as log:
            self.holder = subprocess.Popen(
                holder_argv,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd="/",
                env=command_env(),
                start_new_session=True,  # survives the test's Ctrl-C so close() can tidy up
            )
        self._wait_for_holder(self.holder)
        self._record.holder_pid = self.holder.pid
        self._record.holder_start = process_start(self.holder.pid)
        self._record.save(self.dir)
        self._mount_private_dirs()

    def _wait_for_holder(self, holder: subprocess.Popen[bytes], timeout: float = 10.0) -> None:
        """Until the holder sits in our netns and in a mount ns that is not ours.

        Checked before any mount command: a `umount /sys` must never reach our own namespace.
        """
        want_net, my_mnt = netns_identity(self.netns), ns_of(os.getpid(), "mnt")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if holder.poll() is not None:
                log = file_tail(self.log_dir / "holder.log")
                raise LabError(f"[{self.name}] holder exited {holder.returncode}: {log}")
            with contextlib.suppress(OSError):
                comm = Path(f"/proc/{holder.pid}/comm").read_text().strip()
                mnt = ns_of(holder.pid, "mnt")
                if comm == "sleep" and ns_of(holder.pid, "net") == want_net and mnt != my_mnt:
                    return
            time.sleep(0.01)
        raise LabError(f"[{self.name}] holder not in its namespaces after {timeout}s")

    def _mount_private_dirs(self) -> None:
        stage = self.dir / "cgroup-stage"
        stage.mkdir()
        # mount -n: no /run/mount/utab bookkeeping on the machine's /run
        # cgroups first: a fresh sysfs hides them, and an rbind copies the machine's layout
        # (v1, v2 or hybrid) exactly, where re-mounting each hierarchy would need its options.
        self.run(["mount", "-n", "--rbind", "/sys/fs/cgroup", str(stage)])
        self.run(["umount", "-n", "--lazy", "/sys"])
        self.run(["mount", "-n", "-t", "sysfs", self.netns, "/sys"])
        self.run(["mount", "-n", "--move", str(stage), "/sys/fs/cgroup"])
        stage.rmdir()
        for sub in ("docker/plugins", "containerd", "lock", "netns"):
            (self.run_dir / sub).mkdir(parents=True, exist_ok=True)
        (self.run_dir / "shm").symlink_to("/dev/shm")
        self.run(["mount", "-n", "--bind", str(self.run_dir), "/run"])
        (self.dir / "etc-docker").mkdir()
        Path("/etc/docker").mkdir(exist_ok=True)  # dockerd would create it anyway (key.json)
        self.run(["mount", "-n", "--bind", str(self.dir / "etc-docker"), "/etc/docker"])
        if Path("/usr/lib/docker/plugins").is_dir():  # the third legacy plugin discovery dir
            (self.dir / "empty").mkdir()
            self.run(["mount", "-n", "--bind", str(self.dir / "empty"), "/usr/lib/docker/plugins"])

    # --- commands ----------------------------------------------------------------------------

    def command(self, argv: Sequence[str], cwd: str | Path | None = None) -> list[str]:
        """`argv` prefixed so that it runs in this host's netns and mount ns, in `cwd`."""
        wd = str(cwd) if cwd is not None else os.getcwd()
        enter = ["nsenter", f"--target={self.holder_pid}", "--mount", "--net", f"--wd={wd}"]
        return [*enter, "--", *argv]

    def run(
        self,
        argv: Sequence[str],
        *,
        check: bool = True,
        timeout: float = 60.0,
        input: str | None = None,
        stdin: IO[Any] | int | None = None,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """Run a short command inside the host; raises LabCommandError (with output) if check."""
        return run_cmd(
            self.command(argv, cwd),
            where=self.name,
            check=check,
            timeout=timeout,
            input=input,
            stdin=stdin,
            env=env,
            shown=argv,
        )

    def spawn(
        self,
        argv: Sequence[str],
        log_path: Path,
        *,
        env: Mapping[str, str] | None = None,
        cwd: str | Path | None = None,
    ) -> subprocess.Popen[bytes]:
        """Start a long-running process inside the host (e.g. our plugin), output to `log_path`.

        The Popen's pid is the process itself (nsenter execs it). `close()` stops it; stop it
        earlier with `stop_process()`.
        """
        log_path.parent.mkdir(parents=True, exist_ok=True)
        with log_path.open("ab") as log:
            proc = subprocess.Popen(
                self.command(argv, cwd),
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=command_env(env),
                start_new_session=True,
            )
        self.spawned.append(proc)
        return proc

    def stop_process(self, proc: subprocess.Popen[bytes], timeout: float = 10.0) -> int:
        """SIGTERM, then SIGKILL after `timeout`; returns the exit status."""
        with contextlib.suppress(ValueError):
            self.spawned.remove(proc)
        return stop_popen(proc, timeout)

    def wait_for_plugin(
        self,
        driver: str = "vxlan",
        *,
        proc: subprocess.Popen[bytes] | None = None,
        log_path: Path | None = None,
        timeout: float = 20.0,
        socket_path: Path | None = None,
    ) -> Path:
        """Until /run/docker/plugins/<driver>.sock (or `socket_path`, seen from outside)
        accepts connections; returns its outside path."""
        path = socket_path or self.plugin_socket(driver)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if proc is not None and proc.poll() is not None:
                log = file_tail(log_path) if log_path else ""
                raise LabError(f"[{self.name}] plugin exited {proc.returncode} early:\n{log}")
            with socket.socket(socket.AF_UNIX) as sock, contextlib.suppress(OSError):
                sock.connect(str(path))
                return path
            time.sleep(0.05)
        log = file_tail(log_path) if log_path else ""
        raise LabError(f"[{self.name}] no plugin socket {path} after {timeout}s:\n{log}")

    # --- dockerd -----------------------------------------------------------------------------

    def dockerd_argv(self, extra_args: Sequence[str] = ()) -> list[str]:
        return [
            "dockerd",
            f"--config-file={self.dir / 'daemon.json'}",  # not the machine's /etc/docker one
            f"--data-root={self.data_root}",
            f"--exec-root={self.exec_root}",
            f"--pidfile={self.dir / 'dockerd.pid'}",
            f"--host={self.docker_host}",
            "--bridge=none",
            "--iptables=false",
            "--ip6tables=false",
            "--ip-masq=false",
            "--exec-opt=native.cgroupdriver=cgroupfs",  # no systemd in here, on v1 or v2 hosts
            f"--cgroup-parent=/{self.netns}",  # lets close() find and remove container cgroups
            "--shutdown-timeout=3",
            *extra_args,
        ]

    def start_dockerd(self, *, timeout: float = 60.0, extra_args: Sequence[str] = ()) -> str:
        """Start this host's dockerd and wait until it answers; returns the server version."""
        if self._dockerd_pid() is not None:
            raise LabError(f"[{self.name}] dockerd already running")
        (self.dir / "daemon.json").write_text("{}\n")
        dockerd = self.spawn(self.dockerd_argv(extra_args), self.dockerd_log, cwd="/")
        self.spawned.remove(dockerd)
        self.dockerd = dockerd
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if dockerd.poll() is not None:
                self.dockerd = None
                log = file_tail(self.dockerd_log)
                raise LabError(
                    f"[{self.name}] dockerd exited {dockerd.returncode} at startup; log:\n{log}"
                )
            version = self.docker("version", "--format", "{{.Server.Version}}", check=False)
            if version.returncode == 0:
                return version.stdout.strip()
            time.sleep(0.1)
        with contextlib.suppress(LabError):
            self.stop_dockerd(timeout=5)
        log = file_tail(self.dockerd_log)
        raise LabError(f"[{self.name}] dockerd not ready after {timeout}s; log tail:\n{log}")

    def docker_env(self) -> dict[str, str]:
        """Environment for a docker CLI aimed at this host (and not at ~/.docker's context)."""
        env = {"DOCKER_HOST": self.docker_host, "DOCKER_CONFIG": str(self.dir / "docker-cli")}
        return env | {"DOCKER_CONTEXT": "", "DOCKER_TLS_VERIFY": "", "DOCKER_CERT_PATH": ""}

    def docker(
        self,
        *args: str,
        check: bool = True,
        timeout: float = 60.0,
        input: str | None = None,
        stdin: IO[Any] | int | None = None,
    ) -> subprocess.CompletedProcess[str]:
        """The docker CLI against this host's dockerd, run inside the host."""
        return self.run(
            [self.docker_cli, "--host", self.docker_host, *args],
            check=check,
            timeout=timeout,
            input=input,
            stdin=stdin,
            env=self.docker_env(),
        )

    def _dockerd_pid(self) -> int | None:
        """Our dockerd child, or (adopted host) the live dockerd named by its pidfile."""
        if self.dockerd is not None:
            return self.dockerd.pid if self.dockerd.poll() is None else None
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.dir / "dockerd.pid").read_text())
            if ns_of(pid, "net") == netns_identity(self.netns):
                return pid
        return None

    def stop_dockerd(self, timeout: float = 20.0) -> None:
        """Remove containers (while our plugin still answers), stop dockerd, drop its leftovers.

        Leftovers: containerd/shims a killed dockerd leaves behind, container processes in its
        cgroup, and mounts under the host's dir (data-root bind, exec-root/netns/*) in the
        private mount ns. Raises LabError if a mount could not be removed.
        """
        pid = self._dockerd_pid()
        if pid is not None:
            with contextlib.suppress(LabError):
                ids = self.docker("ps", "-aq", timeout=20).stdout.split()
                if ids:
                    self.docker("rm", "-f", "-v", *ids, timeout=60)
            terminate_pid(pid, timeout)
        if self.dockerd is not None:
            self.dockerd.wait()
            self.dockerd = None
        record = self._record
        with pinned_holder_mnt(record.holder_pid, record.holder_start) as mnt:
            in_mnt, in_cg = in_ns("mnt", mnt), in_cgroup(self.netns)

            def leftover(pid: int) -> bool:
                return in_cg(pid) or (in_mnt(pid) and comm_of(pid) in DOCKER_DAEMON_COMMS)

            kill_matching(leftover)
        prefix = f"{self.dir}/"
        for _ in range(3):
            targets = [m.target for m in mounts_of(self.holder_pid) if m.target.startswith(prefix)]
            if not targets:
                return
            for target in sorted(targets, key=lambda t: t.count("/"), reverse=True):
                self.run(["umount", "-n", "--lazy", target], check=False)
        raise LabError(f"[{self.name}] mounts left after dockerd stopped: {targets}")

    # --- teardown ----------------------------------------------------------------------------

    def close(self) -> None:
        """Stop dockerd and spawned processes, kill anything left, delete ns, cgroups, files.

        Idempotent, and does every step even when one fails; raises LabError afterwards.
        """
        if self._closed:
            return
        self._closed = True
        problems = []
        if self._record.holder_alive():
            try:
                # containers go politely (the plugin sees Leave/DeleteEndpoint); dockerd itself
                # is killed at once: its graceful exit costs ~1 s and keeps nothing we need
                self.stop_dockerd(timeout=0.0)
            except LabError as error:
                problems.append(str(error))
        elif self.dockerd is not None:
            stop_popen(self.dockerd, 5.0)
        for proc in list(self.spawned):
            self.stop_process(proc, timeout=5.0)
        problems += teardown_namespace(self.netns, self.dir, self._record)
        if self.holder is not None:
            stop_popen(self.holder, 5.0)
        if problems:
            raise LabError(f"[{self.name}] teardown problems:\n" + "\n".join(problems))
