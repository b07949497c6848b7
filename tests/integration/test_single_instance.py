"""One daemon per state dir and per socket: a second one is refused at start, clearly,
before it can take the first one's links for orphans (real daemons in a netns)."""

from __future__ import annotations

from pathlib import Path

import pytest

from vxlan_evt.testing.daemon import DaemonProcess
from vxlan_evt.testing.netns import namespaces

pytestmark = pytest.mark.root


def daemon_in(netns: str, workdir: Path) -> DaemonProcess:
    workdir.mkdir()
    return DaemonProcess(netns, workdir)


def test_a_second_daemon_on_the_same_state_dir_or_socket_is_refused(tmp_path: Path) -> None:
    with namespaces("solo") as (ns,):
        first = daemon_in(ns.name, tmp_path / "first").start()
        try:
            same_state = daemon_in(ns.name, tmp_path / "same-state")
            same_state.state_dir = first.state_dir
            assert first.process is not None
            assert same_state.run_until_exit() == 1
            assert (
                f"vxlan-evt: another vxlan-evt (pid {first.process.pid}) already serves "
                f"state dir {first.state_dir}"
            ) in same_state.log()
            assert "Traceback" not in same_state.log()

            same_socket = daemon_in(ns.name, tmp_path / "same-socket")
            same_socket.socket = first.socket
            assert same_socket.run_until_exit() == 1
            assert f"something already listens on {first.socket}" in same_socket.log()
            assert "Traceback" not in same_socket.log()
            # The first one never noticed: still serving, its socket still there.
            assert first.call("Plugin.Activate")[0] == 200
        finally:
            assert first.stop() == 0
