"""The lab rig itself: isolated dockerd per host, plugin discovery, fabric, clean teardown."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from vxlan_evt.testing.busybox import BUSYBOX_IMAGE, busybox_image
from vxlan_evt.testing.fabric import Fabric
from vxlan_evt.testing.lab import LabHost
from vxlan_evt.testing.labowner import cleanup_stale, lab_state
from vxlan_evt.testing.labsys import cgroup_dirs, comm_of, mounts_of, process_start

if TYPE_CHECKING:
    from tests.fixtures.plugin import LabFactory

pytestmark = [pytest.mark.docker, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
STUB_PLUGIN = REPO / "vxlan_evt" / "testing" / "stub_plugin.py"
DOCKER_CLIS = [cli for cli in ("/usr/bin/docker", "/usr/local/bin/docker") if Path(cli).exists()]


def test_container_runs_in_a_lab_host(lab_host: LabHost, busybox_tar: Path) -> None:
    busybox_image(lab_host, busybox_tar)
    result = lab_host.docker("run", "--rm", "--net", "none", BUSYBOX_IMAGE, "echo", "hello")
    assert result.stdout == "hello\n"


@pytest.mark.parametrize("cli", DOCKER_CLIS)
def test_each_installed_docker_cli_drives_dockerd_20_10(
    lab_host: LabHost, busybox_tar: Path, cli: str
) -> None:
    lab_host.docker_cli = cli
    busybox_image(lab_host, busybox_tar)
    assert lab_host.docker("version", "--format", "{{.Server.APIVersion}}").stdout.strip()
    script = "ip -o link | wc -l; cat /proc/self/cgroup"
    result = lab_host.docker("run", "--rm", "--net", "none", BUSYBOX_IMAGE, "sh", "-c", script)
    assert result.stdout.splitlines()[0].strip() == "1"  # only lo: --net none
    assert f"/{lab_host.netns}/" in result.stdout  # containers sit under the host's cgroup


def test_host_sees_its_own_sys_run_and_etc_docker(lab_host: LabHost) -> None:
    assert lab_host.run(["ls", "/sys/class/net"]).stdout.split() == ["lo"]
    (lab_host.plugins_dir / "probe.sock").touch()
    assert lab_host.run(["ls", "/run/docker/plugins"]).stdout.split() == ["probe.sock"]
    assert not Path("/run/docker/plugins/probe.sock").exists()  # the machine's /run is untouched
    (lab_host.dir / "etc-docker" / "probe.json").touch()
    assert "probe.json" in lab_host.run(["ls", "/etc/docker"]).stdout.split()
    assert not Path("/etc/docker/probe.json").exists()
    info = lab_host.docker("info", "--format", "{{.CgroupDriver}} {{.Driver}}").stdout
    assert info.split()[0] == "cgroupfs"


def test_plugin_socket_is_found_only_by_its_own_host(lab_factory: LabFactory) -> None:
    a, b = lab_factory("a"), lab_factory("b")
    log = a.log_dir / "stub.log"
    proc = a.spawn([sys.executable, str(STUB_PLUGIN), "/run/docker/plugins/stubnet.sock"], log)
    assert a.wait_for_plugin("stubnet", proc=proc, log_path=log) == a.plugin_socket("stubnet")
    a.docker("network", "create", "-d", "stubnet", "n1")
    assert "call /NetworkDriver.CreateNetwork" in log.read_text()
    assert not b.plugin_socket("stubnet").exists()
    assert b.run(["ls", "/run/docker/plugins"]).stdout == ""
    a.docker("network", "rm", "n1")
    assert a.stop_process(proc) == 0
    assert not a.plugin_socket("stubnet").exists()


def test_two_hosts_ping_each_other_over_the_fabric(
    lab_factory: LabFactory, lab_fabric: Fabric
) -> None:
    a, b = lab_factory("a", dockerd=False), lab_factory("b", dockerd=False)
    assert lab_fabric.attach(a) == "10.77.0.1"
    assert lab_fabric.attach(b) == "10.77.0.2"
    a.run(["ping", "-c", "1", "-W", "2", "10.77.0.2"])
    b.run(["ping", "-c", "1", "-W", "2", "10.77.0.1"])
    a.run(["ping", "-6", "-c", "1", "-W", "2", "fd77::2"])
    assert "inet 10.77.0.1/24" in a.run(["ip", "addr", "show", "eth1"]).stdout


def _host_pids(host: LabHost) -> dict[int, str | None]:
    """holder, dockerd, containerd, shims: every process in the host's netns, plus containers."""
    pids = [host.holder_pid]
    for line in subprocess.run(
        ["ip", "netns", "pids", host.netns], capture_output=True, text=True
    ).stdout.split():
        pids.append(int(line))
    return {pid: process_start(pid) for pid in pids}


def _assert_gone(host: LabHost, pids: dict[int, str | None]) -> None:
    state = lab_state()
    assert host.netns not in state["netns"]
    assert not [m for m in mounts_of() if host.netns in m.target]
    assert not [
        line for line in Path("/proc/mounts").read_text().splitlines() if host.netns in line
    ]
    assert not cgroup_dirs(host.netns)
    assert not host.dir.exists()
    alive = [pid for pid, start in pids.items() if start and process_start(pid) == start]
    assert not alive, f"processes left: {alive}"


def test_close_leaves_nothing_behind(
    lab_session: Path, busybox_tar: Path, tmp_path: Path, lab_fabric: Fabric
) -> None:
    host = LabHost("gone", base_dir=lab_session, log_dir=tmp_path)
    try:
        host.start_dockerd()
        lab_fabric.attach(host)
        busybox_image(host, busybox_tar)
        cid = host.docker(
            "run", "-d", "--net", "none", BUSYBOX_IMAGE, "sleep", "600"
        ).stdout.strip()
        container_pid = int(host.docker("inspect", "--format", "{{.State.Pid}}", cid).stdout)
        sleeper = host.spawn(["sleep", "600"], tmp_path / "sleep.log")
        pids = _host_pids(host)
        pids |= {pid: process_start(pid) for pid in (container_pid, sleeper.pid)}
        comms = {comm_of(pid) for pid in pids}
        assert {"dockerd", "containerd", "containerd-shim", "sleep"} <= comms
    finally:
        host.close()
    _assert_gone(host, pids)
    host.close()  # idempotent


def test_cleanup_stale_removes_a_crashed_session(
    lab_session: Path, busybox_tar: Path, tmp_path: Path
) -> None:
    crash = f"""
import os, sys
from pathlib import Path
from vxlan_evt.testing.busybox import busybox_image
from vxlan_evt.testing.lab import LabHost
host = LabHost("crash", base_dir=Path({str(lab_session)!r}), log_dir=Path({str(tmp_path)!r}))
host.start_dockerd()
busybox_image(host, Path({str(busybox_tar)!r}))
host.docker("run", "-d", "--net", "none", "local/busybox", "sleep", "600")
print(host.netns, host.holder_pid, flush=True)
sys.stdin.read()  # until the test has looked at what is running
os._exit(0)  # no close(): a crashed test session
"""
    with subprocess.Popen(
        [sys.executable, "-c", crash], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE
    ) as proc:
        assert proc.stdin is not None and proc.stdout is not None
        try:
            netns, holder = proc.stdout.readline().decode().split()
            assert netns in lab_state()["netns"]
            assert cgroup_dirs(netns), "the crashed session has a running container"
        finally:
            proc.stdin.close()
            assert proc.wait(60) == 0
            cleanup_stale(lab_session)  # a parallel session may get there first: check results
    assert netns not in lab_state()["netns"]
    assert not cgroup_dirs(netns)
    assert not (lab_session / netns).exists()
    assert process_start(int(holder)) is None
