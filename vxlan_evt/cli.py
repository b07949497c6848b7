"""The `vxlan-evt` command: `serve` runs the plugin; other verbs troubleshoot."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import trio

from vxlan_evt import __version__
from vxlan_evt.config import (
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
    return parser


def daemon_config(args: argparse.Namespace) -> DaemonConfig:
    return DaemonConfig(
        scope=args.scope,
        vtepdev=args.vtepdev,
        debug=args.debug,
        log_format=args.log_format,
        plugin_socket=args.plugin_socket,
        state_dir=args.state_dir,
        shutdown_grace=args.shutdown_grace,
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
