"""Running on the host without a container: the systemd unit and plugin discovery.

No systemd runs as PID 1 here, so the unit is checked by `systemd-analyze verify` and then
its own ExecStartPre/ExecStart lines run, with the example environment file, under a real
dockerd in a lab host, as systemd would run them."""

from __future__ import annotations

import configparser
import shlex
import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.fixtures.plugin import require
from vxlan_evt.testing.busybox import BUSYBOX_IMAGE, busybox_image
from vxlan_evt.testing.plugin_host import container_ip, owned_links

if TYPE_CHECKING:
    from tests.fixtures.plugin import LabFactory

pytestmark = [pytest.mark.docker, pytest.mark.root]

REPO = Path(__file__).resolve().parents[2]
UNIT = REPO / "tools/systemd/vxlan-evt.service"
ENV_FILE = REPO / "tools/systemd/vxlan-evt.env"
INSTALLED = "/opt/vxlan-evt/bin/vxlan-evt"  # where the unit expects the console script


def service_section() -> configparser.SectionProxy:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read_string(UNIT.read_text())
    return unit["Service"]


def environment_file() -> dict[str, str]:
    lines = [line.strip() for line in ENV_FILE.read_text().splitlines()]
    pairs = [line.split("=", 1) for line in lines if line and not line.startswith("#")]
    return {key: value for key, value in pairs}


def test_the_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        require(["systemd-analyze not found (apt-get install systemd)"])
        raise AssertionError("unreachable")
    # The same unit, with the console script where this checkout has it.
    unit = tmp_path / "vxlan-evt.service"
    unit.write_text(UNIT.read_text().replace(INSTALLED, str(REPO / ".venv/bin/vxlan-evt")))
    verified = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert verified.returncode == 0, verified.stderr
    assert "vxlan-evt.service" not in verified.stderr, verified.stderr  # no warning about us


def test_the_units_command_serves_docker(lab_factory: LabFactory, busybox_tar: Path,
                                         tmp_path: Path) -> None:  # fmt: skip
    service = service_section()
    assert service["ExecStart"].startswith(INSTALLED + " ")
    host = lab_factory("h1")
    busybox_image(host, busybox_tar)
    pre = shlex.split(service["ExecStartPre"].removeprefix("+"))
    host.run(pre)
    argv = shlex.split(service["ExecStart"].replace(INSTALLED, str(REPO / ".venv/bin/vxlan-evt")))
    # The example settings as systemd would pass them, and a state dir of the test's own
    # (a lab host shares the machine's /var).
    env = environment_file() | {"VXLAN_EVT_STATE_DIR": str(tmp_path / "state")}
    log = tmp_path / "serve.log"
    process = host.spawn(argv, log, env=env, cwd="/")
    host.wait_for_plugin(proc=process, log_path=log)
    docker = host.docker
    docker("network", "create", "-d", "vxlan", "-o", "VxlanId=42", "--subnet=10.42.0.0/24",
           "vxlan42")  # fmt: skip
    docker("run", "-d", "--name", "c1", "--net", "vxlan42", BUSYBOX_IMAGE, "sleep", "600")
    assert container_ip(host, "c1").startswith("10.42.0.")
    docker("rm", "-f", "c1")
    docker("network", "rm", "vxlan42")
    assert owned_links(host) == []
    assert host.stop_process(process) == 0, log.read_text()[-2000:]


def test_a_spec_file_points_docker_at_another_socket(lab_factory: LabFactory,
                                                     tmp_path: Path) -> None:  # fmt: skip
    """Docker also finds legacy plugins by `<name>.spec` files in /etc/docker/plugins that
    hold the socket's URL: the driver is then named after the spec file."""
    host = lab_factory("h1")
    (host.dir / "etc-docker" / "plugins").mkdir()
    (host.dir / "etc-docker" / "plugins" / "vxevt.spec").write_text(
        "unix:///run/vxlan-evt/plugin.sock\n"
    )
    log = tmp_path / "serve.log"
    process = host.spawn(
        [str(REPO / ".venv/bin/vxlan-evt"), "serve", "--plugin-socket",
         "/run/vxlan-evt/plugin.sock", "--state-dir", str(tmp_path / "state")],
        log, cwd="/",
    )  # fmt: skip
    socket = host.run_dir / "vxlan-evt" / "plugin.sock"
    host.wait_for_plugin(proc=process, log_path=log, socket_path=socket)
    host.docker("network", "create", "-d", "vxevt", "-o", "VxlanId=43", "--subnet=10.43.0.0/24",
                "vxlan43")  # fmt: skip
    assert "vx-43" in host.run(["ip", "-o", "link"]).stdout
    host.docker("network", "rm", "vxlan43")
    assert owned_links(host) == []
    assert host.stop_process(process) == 0
