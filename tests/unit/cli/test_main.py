from __future__ import annotations

import re
from pathlib import Path

import pytest

import vxlan_evt.cli.main as cli_module
from vxlan_evt.cli.main import build_parser, daemon_config, main
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


def from_environment(environ: dict[str, str], *argv: str) -> DaemonConfig:
    return daemon_config(build_parser(environ).parse_args(["serve", *argv]))


def test_every_flag_can_come_from_the_environment() -> None:
    config = from_environment(
        {
            "VXLAN_EVT_SCOPE": "global",
            "VXLAN_EVT_ETCD": "http://10.0.0.5:2379,http://10.0.0.6:2379",
            "VXLAN_EVT_RESOLVE": "on-demand",
            "VXLAN_EVT_DEBUG": "true",
            "VXLAN_EVT_POPULATE": "false",
            "VXLAN_EVT_ARP_ANSWER": "off",
            "VXLAN_EVT_IDLE_TIMEOUT": "60",
            "VXLAN_EVT_STATE_DIR": "/srv/vxlan",
            "VXLAN_EVT_VTEPDEV": "",  # empty: unset
        }
    )
    assert config.scope == "global" and config.resolve == "on-demand"
    assert config.etcd_endpoints == ("http://10.0.0.5:2379", "http://10.0.0.6:2379")
    assert config.debug and not config.populate and not config.arp_answer
    assert config.idle_timeout == 60.0 and config.state_dir == Path("/srv/vxlan")
    assert config.vtepdev is None


def test_the_command_line_beats_the_environment() -> None:
    config = from_environment(
        {"VXLAN_EVT_SCOPE": "global", "VXLAN_EVT_ARP_ANSWER": "false"}, "--scope", "local",
        "--arp-answer",
    )  # fmt: skip
    assert config.scope == "local" and config.arp_answer


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"VXLAN_EVT_SCOPE": "glob"}, "VXLAN_EVT_SCOPE='glob': choose from local, global"),
        ({"VXLAN_EVT_DEBUG": "maybe"}, "VXLAN_EVT_DEBUG='maybe': use true or false"),
        ({"VXLAN_EVT_IDLE_TIMEOUT": "-1"}, "VXLAN_EVT_IDLE_TIMEOUT='-1': '-1' is not a positive"),
        ({"VXLAN_EVT_NETLINK_RCVBUF": "8M"}, "VXLAN_EVT_NETLINK_RCVBUF='8M': not a valid value"),
    ],
)
def test_a_bad_environment_value_names_its_variable(environ: dict[str, str], message: str) -> None:
    with pytest.raises(SystemExit, match=re.escape(message)):
        build_parser(environ)


def test_other_verbs_ignore_the_environment() -> None:
    args = build_parser({"VXLAN_EVT_SCOPE": "global"}).parse_args(["networks"])
    assert not hasattr(args, "scope")


def test_a_bad_environment_does_not_stop_the_other_verbs(monkeypatch: pytest.MonkeyPatch) -> None:
    """`vxlan-evt networks` (e.g. via `docker exec` in the image) must not trip over a
    setting meant for serve; serve itself refuses it."""
    monkeypatch.setattr(cli_module, "run_verb", lambda args: 0)
    assert main(["networks"], environ={"VXLAN_EVT_SCOPE": "glob"}) == 0
    with pytest.raises(SystemExit, match="VXLAN_EVT_SCOPE='glob'"):
        main(["serve"], environ={"VXLAN_EVT_SCOPE": "glob"})


def test_our_errors_from_inside_the_nursery_are_one_line_not_a_traceback(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """trio wraps what a nursery's task raises in an ExceptionGroup; a SystemFailure at
    start-up (e.g. a VtepDev not there yet) must still read as our message."""
    import trio

    from vxlan_evt.daemon import app
    from vxlan_evt.model.errors import SystemFailure

    async def failing_daemon(config: object) -> None:
        async def start() -> None:
            raise SystemFailure("kernel refused CreateVxlan(vx-42): no such device")

        async with trio.open_nursery() as nursery:
            nursery.start_soon(start)

    monkeypatch.setattr(app, "run_daemon", failing_daemon)
    monkeypatch.setattr(cli_module, "setup_logging", lambda **_: None)  # the root logger stays
    assert main(["serve", "--state-dir", str(tmp_path)], environ={}) == 1
    assert capsys.readouterr().err == (
        "vxlan-evt: kernel refused CreateVxlan(vx-42): no such device\n"
    )


def test_other_errors_keep_their_traceback(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from vxlan_evt.daemon import app

    async def broken_daemon(config: object) -> None:
        raise KeyError("a bug")

    monkeypatch.setattr(app, "run_daemon", broken_daemon)
    monkeypatch.setattr(cli_module, "setup_logging", lambda **_: None)
    with pytest.raises(KeyError):
        main(["serve", "--state-dir", str(tmp_path)], environ={})


@pytest.mark.parametrize("address", ["127.0.0.1:9310", "127.0.0.2:80", "[::1]:9310", "localhost:9"])
def test_the_api_listens_on_loopback_without_asking(address: str) -> None:
    assert parse("serve", "--api-listen", address).api_listen == address


@pytest.mark.parametrize("address", ["0.0.0.0:9310", "10.0.0.5:9310", "[::]:9310", "host.lan:1"])
def test_a_public_api_must_be_asked_for(address: str) -> None:
    with pytest.raises(SystemExit, match=r"is not a loopback address.*--api-public"):
        parse("serve", "--api-listen", address)
    assert parse("serve", "--api-listen", address, "--api-public").api_listen == address
    environ = {"VXLAN_EVT_API_LISTEN": address, "VXLAN_EVT_API_PUBLIC": "true"}
    assert from_environment(environ).api_listen == address
