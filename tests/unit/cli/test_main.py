from __future__ import annotations

from pathlib import Path

import pytest

from vxlan_evt.cli.main import build_parser, daemon_config
from vxlan_evt.daemon.config import DaemonConfig, normalise_legacy_flags


def parse(*argv: str) -> DaemonConfig:
    return daemon_config(build_parser().parse_args(normalise_legacy_flags(list(argv))))


def test_defaults() -> None:
    config = parse("serve")
    assert config == daemon_config(build_parser().parse_args(["serve"]))
    assert str(config.plugin_socket) == "/run/docker/plugins/vxlan.sock"
    assert str(config.state_dir) == "/var/lib/vxlan-evt"
    assert config.scope == "local"


def test_seed_command_line_still_works() -> None:
    config = parse("serve", "-d", "-scope", "global", "-vtepdev", "eth1")
    assert config.debug is True
    assert config.scope == "global"
    assert config.vtepdev == "eth1"


def test_paths() -> None:
    config = parse("serve", "--plugin-socket", "/tmp/x/vx2.sock", "--state-dir", "/tmp/s")
    assert config.plugin_socket == Path("/tmp/x/vx2.sock")
    assert config.driver_name == "vx2"


def test_bad_scope_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse("serve", "--scope", "planet")
    assert "invalid choice: 'planet'" in capsys.readouterr().err
