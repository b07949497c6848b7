"""The troubleshooting verbs of `vxlan-evt`: read the observe API, print for people or scripts.

`cli.main` owns the parser and calls `add_verbs` to hang these verbs on it, then
`run_verb` for any verb other than `serve`. Every verb takes `--json` (the
API's own document, for scripts; NDJSON for `events`) and the API address.
Failures are one line on stderr and exit status 1, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TextIO

from vxlan_evt.cli import views
from vxlan_evt.cli.client import ClientError, ObserveClient
from vxlan_evt.cli.doctor import diagnose, exit_status, format_findings
from vxlan_evt.daemon.config import DEFAULT_API_SOCKET
from vxlan_evt.model.events import EVENT_TYPES
from vxlan_evt.model.tables import OBSERVE_TABLES


def event_types(value: str) -> list[str]:
    """`l3miss,l2miss`: checked here, since the API would silently match nothing."""
    types = [t.strip() for t in value.split(",") if t.strip()]
    unknown = sorted(set(types) - set(EVENT_TYPES))
    if unknown or not types:
        raise argparse.ArgumentTypeError(
            f"unknown event type {', '.join(unknown) or repr(value)}; "
            f"choose from {','.join(EVENT_TYPES)}"
        )
    return types


def sequence_number(value: str) -> int:
    if not value.isdigit():
        raise argparse.ArgumentTypeError(f"{value!r} is not an event sequence number (0 or more)")
    return int(value)


def _common() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    where = common.add_argument_group("observe API")
    place = where.add_mutually_exclusive_group()
    place.add_argument(
        "--api-socket",
        type=Path,
        default=DEFAULT_API_SOCKET,
        metavar="PATH",
        help=f"unix socket of the daemon's observe API (default: {DEFAULT_API_SOCKET})",
    )
    place.add_argument(
        "--api-url", metavar="URL", help="observe API over TCP instead, e.g. http://127.0.0.1:9310"
    )
    where.add_argument(
        "--timeout",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="give up when the daemon does not answer (default: 10)",
    )
    return common


def add_verbs(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add `events`, the table verbs, `doctor` and `metrics` to the `vxlan-evt` parser."""
    common = _common()

    def verb(name: str, help: str) -> argparse.ArgumentParser:
        parser = subparsers.add_parser(name, help=help, description=help, parents=[common])
        parser.set_defaults(observe_verb=name)
        return parser

    def machine(parser: argparse.ArgumentParser, what: str) -> None:
        parser.add_argument("--json", action="store_true", help=f"print {what}, for scripts")

    events = verb("events", "netlink and resolver events: history, or live with --follow")
    machine(events, "NDJSON, one event per line")
    events.add_argument("-f", "--follow", action="store_true", help="keep printing new events")
    events.add_argument(
        "--type", type=event_types, metavar="T[,T]", help=f"only these: {','.join(EVENT_TYPES)}"
    )
    events.add_argument("--network", metavar="ID", help="only this network (ID prefix)")
    events.add_argument("--ifname", metavar="DEV", help="only events on this interface")
    events.add_argument(
        "--since", type=sequence_number, metavar="SEQ", help="only events after this number"
    )
    for name, text in OBSERVE_TABLES.items():
        table = verb(name, text)
        machine(table, "the API's JSON document")
        table.add_argument("--network", metavar="ID", help="only rows of this network (ID prefix)")
    doctor = verb("doctor", "check each network's links, MTUs, entries and misses; say what to fix")
    machine(doctor, "the findings as JSON")
    doctor.add_argument("network", nargs="?", help="only this network (ID prefix or device name)")
    verb("metrics", "the daemon's Prometheus metrics, as text")


def _print_json(document: Any, out: TextIO) -> None:
    out.write(json.dumps(document, indent=2) + "\n")


def _matches(row: Any, network: str, vnis: set[int]) -> bool:
    """By network ID prefix, or for rows without one (peers, misses), by the network's VNI."""
    if not isinstance(row, dict):
        return False
    if "network_id" in row:
        return str(row.get("network_id") or "").startswith(network)
    return row.get("vni") in vnis


def run_events(client: ObserveClient, args: argparse.Namespace, out: TextIO) -> int:
    stream = client.iter_events(
        type=args.type,
        network=args.network,
        ifname=args.ifname,
        since=args.since,
        follow=args.follow,
    )
    for event in stream:
        out.write((json.dumps(event) if args.json else views.event_line(event)) + "\n")
        if args.follow:
            out.flush()
    return 0


def run_table(client: ObserveClient, args: argparse.Namespace, out: TextIO) -> int:
    name: str = args.observe_verb
    rows = client.get_json(name)
    if args.network:
        networks = client.get_json("networks")
        vnis = {
            n.get("vni")
            for n in networks
            if str(n.get("network_id") or "").startswith(args.network)
        }
        rows = [row for row in rows if _matches(row, args.network, vnis)]
    if args.json:
        _print_json(rows, out)
    elif name in ("fdb", "neigh"):
        try:
            peers = client.get_json("peers")
        except ClientError:
            peers = []  # the REMOTE column is a nicety; the entries are what was asked for
        render = views.fdb if name == "fdb" else views.neigh
        out.write(render(rows, peers) + "\n")
    else:
        out.write(views.TABLES[name](rows) + "\n")
    return 0


def run_doctor(client: ObserveClient, args: argparse.Namespace, out: TextIO) -> int:
    docs = {
        name: client.get_json(name)
        for name in ("networks", "links", "fdb", "neigh", "peers", "misses", "endpoints")
    }
    findings = diagnose(
        docs["networks"],
        docs["links"],
        docs["fdb"],
        docs["neigh"],
        docs["peers"],
        docs["misses"],
        network=args.network,
        endpoints=docs["endpoints"],
    )
    if args.json:
        _print_json([f.to_dict() for f in findings], out)
    else:
        out.write(format_findings(findings) + "\n")
    return exit_status(findings)


def run_metrics(client: ObserveClient, args: argparse.Namespace, out: TextIO) -> int:
    out.write(client.get_text("metrics"))
    return 0


Runner = Callable[[ObserveClient, argparse.Namespace, TextIO], int]
RUNNERS: dict[str, Runner] = {
    "events": run_events,
    "doctor": run_doctor,
    "metrics": run_metrics,
    **dict.fromkeys(OBSERVE_TABLES, run_table),
}


def run_verb(args: argparse.Namespace, out: TextIO | None = None, err: TextIO | None = None) -> int:
    """Run an observe verb; the exit status: 0, 1 on errors (doctor: on error findings), 130 on Ctrl-C."""
    out = sys.stdout if out is None else out
    err = sys.stderr if err is None else err
    runner = RUNNERS.get(getattr(args, "observe_verb", None) or "")
    if runner is None:
        print(f"vxlan-evt: {getattr(args, 'verb', None)!r} is not an observe verb", file=err)
        return 2
    try:
        with ObserveClient(args.api_socket, args.api_url, args.timeout) as client:
            return runner(client, args, out)
    except ClientError as exc:
        print(f"vxlan-evt: {exc}", file=err)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        _silence_stdout(out)
        return 0


def _silence_stdout(out: TextIO) -> None:
    """The reader went away (`| head`): point stdout at /dev/null so exit does not complain."""
    if out is sys.stdout:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)


def main(argv: Sequence[str] | None = None) -> int:
    """Stand-alone entry for the verbs alone (tests, or before `cli.main` wires them in)."""
    parser = argparse.ArgumentParser(prog="vxlan-evt")
    add_verbs(parser.add_subparsers(dest="verb", required=True))
    return run_verb(parser.parse_args(argv))
