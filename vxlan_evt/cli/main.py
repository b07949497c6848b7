"""The `vxlan-evt` command: `serve` runs the plugin; other verbs troubleshoot."""

from __future__ import annotations

import argparse
import ipaddress
import os
import socket
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

import trio

from vxlan_evt import __version__
from vxlan_evt.cli.verbs import add_verbs, run_verb
from vxlan_evt.daemon.config import (
    DEFAULT_API_SOCKET,
    DEFAULT_PLUGIN_SOCKET,
    DEFAULT_STATE_DIR,
    DaemonConfig,
    normalise_legacy_flags,
)
from vxlan_evt.daemon.logs import setup_logging
from vxlan_evt.model.defaults import DEFAULT_ETCD_PREFIX, DEFAULT_NETLINK_RCVBUF
from vxlan_evt.model.errors import VxlanEvtError
from vxlan_evt.model.modes import RESOLVE_MODES

ENVIRONMENT_PREFIX = "VXLAN_EVT_"
TRUE_WORDS, FALSE_WORDS = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def build_parser(environ: Mapping[str, str] | None = None) -> argparse.ArgumentParser:
    """The command line; `serve`'s defaults come from `environ` (VXLAN_EVT_<FLAG>) if given."""
    parser = argparse.ArgumentParser(
        prog="vxlan-evt", description="Event-driven VXLAN network driver for Docker."
    )
    parser.add_argument("--version", action="version", version=f"vxlan-evt {__version__}")
    verbs = parser.add_subparsers(dest="verb", required=True)
    serve = verbs.add_parser(
        "serve",
        help="run the Docker network plugin in the foreground",
        description="Run the Docker network plugin in the foreground. Every flag can also "
        f"be set in the environment as {ENVIRONMENT_PREFIX}<FLAG> (e.g. "
        f"{ENVIRONMENT_PREFIX}SCOPE=global, {ENVIRONMENT_PREFIX}ETCD=http://10.0.0.5:2379, "
        f"{ENVIRONMENT_PREFIX}DEBUG=true, {ENVIRONMENT_PREFIX}POPULATE=false); a flag on the "
        "command line wins, an empty variable counts as unset.",
    )
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
        "authentication: only a loopback address is taken unless --api-public)",
    )
    serve.add_argument(
        "--api-public",
        action="store_true",
        help="let --api-listen bind a non-loopback address (anyone who reaches it reads "
        "the host's links, entries and events)",
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
    serve.add_argument(
        "--arp-answer",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="after programming an L3 miss, send the container an ARP reply / neighbour "
        "advertisement so its first packet leaves at once instead of after ~1 s (default: on)",
    )
    serve.add_argument(
        "--resolve",
        choices=RESOLVE_MODES,
        default="preprogram",
        help="preprogram: write every peer's entries up front and keep them; on-demand: "
        "write them on a miss and remove them when idle. A network's Resolve option "
        "overrides it (default: preprogram)",
    )
    serve.add_argument(
        "--idle-timeout",
        type=positive_seconds,
        default=300.0,
        metavar="SECONDS",
        help="on-demand entries the kernel has not used for this long are removed (default: 300)",
    )
    etcd = serve.add_argument_group("etcd peer backend (several hosts)")
    etcd.add_argument(
        "--etcd",
        metavar="URL[,URL]",
        type=lambda v: tuple(u for u in v.split(",") if u),
        default=(),
        help="etcd v3 endpoints, e.g. http://10.0.0.5:2379; without it peers come only "
        "from this host and --peers",
    )
    etcd.add_argument(
        "--etcd-prefix",
        default=DEFAULT_ETCD_PREFIX,
        help=f"key prefix (default: {DEFAULT_ETCD_PREFIX})",
    )
    etcd.add_argument("--etcd-cert", help="client certificate (TLS)")
    etcd.add_argument("--etcd-key", help="client key (TLS)")
    etcd.add_argument("--etcd-ca", help="CA bundle (TLS)")
    etcd.add_argument("--etcd-username")
    etcd.add_argument("--etcd-password")
    etcd.add_argument(
        "--etcd-lease-ttl",
        type=int,
        default=10,
        metavar="SECONDS",
        help="a dead host's endpoints disappear from the others this long after it dies",
    )
    etcd.add_argument("--hostname", default="", help="this host's name in etcd")
    etcd.add_argument(
        "--advertise-address",
        metavar="IP",
        help="this host's VTEP address for networks without SrcAddr",
    )
    if environ is not None:
        serve.set_defaults(**environment_defaults(serve, environ))
    add_verbs(verbs)
    return parser


def environment_variable(action: argparse.Action) -> str:
    return ENVIRONMENT_PREFIX + action.dest.upper()


def environment_defaults(
    parser: argparse.ArgumentParser, environ: Mapping[str, str]
) -> dict[str, object]:
    """Defaults for `parser`'s flags from VXLAN_EVT_<DEST> variables, converted and checked
    as the flag's own value would be (the managed plugin's settable env lands here)."""
    defaults: dict[str, object] = {}
    for action in parser._actions:  # argparse has no public list of a parser's actions
        if not action.option_strings or action.dest == "help":
            continue
        name = environment_variable(action)
        raw = environ.get(name, "").strip()
        if not raw:
            continue
        if action.nargs == 0:  # a switch: --debug, --no-populate, --arp-answer/--no-...
            word = raw.lower()
            if word not in TRUE_WORDS + FALSE_WORDS:
                raise SystemExit(f"vxlan-evt: {name}={raw!r}: use true or false")
            # By dest, so a store_false switch reads naturally: POPULATE=false = --no-populate.
            defaults[action.dest] = word in TRUE_WORDS
            continue
        defaults[action.dest] = environment_value(action, name, raw)
    return defaults


def environment_value(action: argparse.Action, name: str, raw: str) -> object:
    convert = action.type if callable(action.type) else str
    try:
        value = convert(raw)
    except (argparse.ArgumentTypeError, ValueError, TypeError) as exc:
        detail = str(exc) if isinstance(exc, argparse.ArgumentTypeError) else "not a valid value"
        raise SystemExit(f"vxlan-evt: {name}={raw!r}: {detail}") from None
    if action.choices is not None and value not in action.choices:
        choices = ", ".join(map(str, action.choices))
        raise SystemExit(f"vxlan-evt: {name}={raw!r}: choose from {choices}")
    return value


def positive_seconds(value: str) -> float:
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0.0
    if not 0 < seconds < float("inf"):
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive number of seconds")
    return seconds


def host_port(value: str) -> str:
    """`HOST:PORT` (IPv6 as `[::1]:PORT`), checked here so a typo fails before start-up."""
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise argparse.ArgumentTypeError(f"{value!r} is not HOST:PORT (e.g. 127.0.0.1:9310)")
    return value


def loopback_only(api_listen: str | None, public: bool) -> None:
    """Refuse a non-loopback --api-listen unless --api-public says it is meant."""
    if api_listen is None or public:
        return
    host = api_listen.rpartition(":")[0].strip("[]")
    if host == "localhost":
        return
    try:
        if ipaddress.ip_address(host).is_loopback:
            return
    except ValueError:
        pass  # a name: it may resolve to anything
    raise SystemExit(
        f"vxlan-evt: --api-listen {api_listen} is not a loopback address and the observe API "
        "has no authentication; use 127.0.0.1:PORT, or add --api-public to expose it anyway"
    )


def daemon_config(args: argparse.Namespace) -> DaemonConfig:
    loopback_only(args.api_listen, args.api_public)
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
        arp_answer=args.arp_answer,
        resolve=args.resolve,
        idle_timeout=args.idle_timeout,
        etcd_endpoints=args.etcd,
        etcd_prefix=args.etcd_prefix if args.etcd_prefix.endswith("/") else args.etcd_prefix + "/",
        etcd_tls=etcd_tls(args),
        etcd_username=args.etcd_username,
        etcd_password=args.etcd_password,
        etcd_lease_ttl=args.etcd_lease_ttl,
        hostname=args.hostname or socket.gethostname(),
        advertise_address=args.advertise_address,
    )


def etcd_tls(args: argparse.Namespace) -> tuple[str, str, str] | None:
    files = (args.etcd_cert, args.etcd_key, args.etcd_ca)
    if not any(files):
        return None
    if not all(files):
        raise SystemExit("vxlan-evt: --etcd-cert, --etcd-key and --etcd-ca go together")
    return (args.etcd_cert, args.etcd_key, args.etcd_ca)


def main(argv: list[str] | None = None, environ: Mapping[str, str] | None = None) -> int:
    words = normalise_legacy_flags(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(words)
    if args.verb != "serve":
        return run_verb(args)
    # Only serve reads VXLAN_EVT_*: a bad one must not stop `networks`.
    args = build_parser(os.environ if environ is None else environ).parse_args(words)
    from vxlan_evt.daemon.app import run_daemon

    config = daemon_config(args)
    setup_logging(debug=config.debug, log_format=config.log_format)
    try:
        trio.run(run_daemon, config)
    except (VxlanEvtError, BaseExceptionGroup) as exc:
        errors = our_errors(exc)
        if errors is None:
            raise
        for error in errors:
            print(f"vxlan-evt: {error}", file=sys.stderr)
        return 1
    return 0


def our_errors(exc: BaseException) -> list[VxlanEvtError] | None:
    """The errors we raise on purpose, also when trio's nursery wrapped them in an
    exception group; None when anything else is in there (that one keeps its traceback)."""
    if isinstance(exc, VxlanEvtError):
        return [exc]
    if not isinstance(exc, BaseExceptionGroup):
        return None
    ours, rest = exc.split(VxlanEvtError)  # split looks into nested groups too
    if ours is None or rest is not None:
        return None
    return list(_leaves(ours))


def _leaves(group: BaseExceptionGroup[VxlanEvtError]) -> Iterator[VxlanEvtError]:
    for inner in group.exceptions:
        if isinstance(inner, BaseExceptionGroup):
            yield from _leaves(inner)
        else:
            yield inner


if __name__ == "__main__":
    sys.exit(main())
