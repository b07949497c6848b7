"""Daemon settings: the seed's single-dash flags and the driver name."""

from __future__ import annotations

from pathlib import Path

import pytest

from vxlan_evt.daemon.config import DaemonConfig, normalise_legacy_flags


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        (["serve", "-scope", "global"], ["serve", "--scope", "global"]),
        (["serve", "-scope=global"], ["serve", "--scope=global"]),
        (["serve", "-vtepdev", "eth1", "-d"], ["serve", "--vtepdev", "eth1", "-d"]),
        (["serve", "--scope", "local"], ["serve", "--scope", "local"]),
    ],
)
def test_legacy_single_dash_flags(argv: list[str], expected: list[str]) -> None:
    assert normalise_legacy_flags(argv) == expected


def test_driver_name_is_the_socket_stem() -> None:
    assert DaemonConfig(plugin_socket=Path("/run/docker/plugins/vxlan.sock")).driver_name == "vxlan"
