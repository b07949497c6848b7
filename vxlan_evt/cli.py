"""The `vxlan-evt` command: `serve` runs the plugin; other verbs troubleshoot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from vxlan_evt import __version__
from vxlan_evt.config import (
    DEFAULT_API_SOCKET,
    DEFAULT_NETLINK_RCVBUF,
    DEFAULT_PLUGIN_SOCKET,
    DEFAULT_STATE_DIR,
    DaemonConfig,
    normalise_legacy_flags,
)
from vxlan_evt.errors import VxlanEvtError
from vxlan_evt.logs import setup_logging


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vxlan-evt", description="Event-driven VXLAN network driver for Docker."
    )
    parser.add_argument("--version", action="version", version=f"vxlan-evt {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)
    serve = verbs.add_parser("serve", help="run the Docker network plugin in the foreground")
    serve.add_argument("-d", "--debug", action="store_true", help="debug logging")
    serve.add_argument(
        "--scope",
        choices=("local", "global"),
        default="local",
        help="capability scope reported to Docker (default: local); global keeps the "
        "gateway address off the host",
    )
    serve.add_argument(
        "--vtepdev", metavar="DEV", help="underlay device; overrides a network's VtepDev option"
    )
    serve.add_argument(
        "--plugin-socket",
        type=Path,
        default=DEFAULT_PLUGIN_SOCKET,
        help=f"unix socket Docker finds the driver at; its stem is the driver name "
        f"(default: {DEFAULT_PLUGIN_SOCKET})",
    )
    serve.add_argument(
        "--state-dir",
        type=Path,
        default=DEFAULT_STATE_DIR,
        help=f"where networks and endpoints are persisted (default: {DEFAULT_STATE_DIR})",
    )
    serve.add_argument("--log-format", choices=("text", "json"), default="text")
    serve.add_argument(
        "--shutdown-grace",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="how long in-flight calls may take on SIGTERM (default: 10)",
    )
    serve.add_argument(
        "--api-socket",
        type=Path,
        default=DEFAULT_API_SOCKET,
        help=f"unix socket of the read-only observe API (default: {DEFAULT_API_SOCKET})",
    )
    serve.add_argument(
        "--api-listen",
        metavar="HOST:PORT",
        type=host_port,
        help="also serve the observe API on TCP, e.g. 127.0.0.1:9310 (it has no "
        "authentication: keep it on loopback)",
    )
    serve.add_argument(
        "--peers",
        type=Path,
        metavar="FILE",
        help='static peers, JSON or TOML: {"<VNI>": [{"ip": ..., "mac": ..., "vtep": ...}]}; '
        "reloaded when it changes",
    )
    serve.add_argument(
        "--no-populate",
        dest="populate",
        action="store_false",
        help="only watch misses; never write FDB/neighbour entries",
    )
    serve.add_argument(
        "--no-log-events",
        dest="log_events",
        action="store_false",
        help="do not log one line per netlink event (they are still exposed)",
    )
    serve.add_argument(
        "--netlink-rcvbuf",
        type=int,
        default=DEFAULT_NETLINK_RCVBUF,
        metavar="BYTES",
        help="receive buffer of the event socket (default: 8 MiB)",
    )
    return parser


def host_port(value: str) -> str:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`), checked here so a typo fails before start-up."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:9310)")
    return value


def daemon_config(args: argparse.Namespace) -> DaemonConfig:
    return DaemonConfig(
        scope=args.scope,
        vtepdev=args.vtepdev,
        debug=args.debug,
        log_format=args.log_format,
        plugin_socket=args.plugin_socket,
        state_dir=args.state_dir,
        shutdown_grace=args.shutdown_grace,
        api_socket=args.api_socket,
        api_listen=args.api_listen,
        peers_file=args.peers,
        populate=args.populate,
        log_events=args.log_events,
        netlink_rcvbuf=args.netlink_rcvbuf,
    )


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(normalise_legacy_flags(sys.argv[1:] if argv is None else argv))
    if args.verb == "serve":
        from vxlan_evt.app import run_daemon

        config = daemon_config(args)
        setup_logging(debug=config.debug, log_format=config.log_format)
        try:
            trio.run(run_daemon, config)
        except VxlanEvtError as exc:
            print(f"vxlan-evt: {exc}", file=sys.stderr)
            return 1
        return 0
    return 2


if __name__ == "__main__":
    sys.exit(main())
