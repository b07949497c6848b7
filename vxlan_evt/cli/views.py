"""Human views of the observe API's documents: aligned tables and one-line events.

Pure: rows in, text out, so every view is tested without a daemon. Like
iproute2 but with the two things iproute2 cannot know: which Docker network
(short 12-character ID) and which container endpoint a row belongs to, and
for kernel entries, which remote container a MAC or IP is.
"""

from __future__ import annotations

import ipaddress
import textwrap
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, tzinfo
from typing import Any, Protocol, TypeAlias

Row: TypeAlias = Mapping[str, Any]
Column: TypeAlias = tuple[str, Callable[[Row], Any]]
SHORT_ID = 12


def short_id(value: object) -> str:
    """Docker's short form of a 64-hex ID; `-` when there is none."""
    return str(value)[:SHORT_ID] if value else "-"


def cell(value: object) -> str:
    if value is None or value == "":
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list | tuple):
        return ",".join(str(v) for v in value) or "-"
    return str(value)


def table(columns: Sequence[Column], rows: Iterable[Row], empty: str) -> str:
    """Left-aligned columns two spaces apart; the last one is not padded."""
    body = [[cell(get(row)) for _, get in columns] for row in rows]
    if not body:
        return empty
    lines = [[title for title, _ in columns], *body]
    widths = [max(len(line[i]) for line in lines) for i in range(len(columns) - 1)]
    out = []
    for line in lines:
        padded = [text.ljust(width) for text, width in zip(line, widths, strict=False)]
        out.append("  ".join([*padded, line[-1]]).rstrip())
    return "\n".join(out)


def _ip_key(text: object) -> tuple[int, int]:
    try:
        address = ipaddress.ip_address(str(text))
    except ValueError:
        return (9, 0)
    return (address.version, int(address))


def _owner(row: Row) -> str:
    """The network, or `foreign` for something vxlan-evt did not create."""
    if row.get("network_id"):
        return short_id(row["network_id"])
    return "foreign" if row.get("foreign", True) else "-"


def _remote(peers: Sequence[Row], vni: object, *, mac: object = None, ip: object = None) -> str:
    """`container@host` of the peer a kernel entry points at, if the peer table knows it."""
    for peer in peers:
        if vni is not None and peer.get("vni") != vni:
            continue
        if (mac is not None and peer.get("mac") == mac) or (
            ip is not None and peer.get("ip") == ip
        ):
            name = peer.get("container") or peer.get("ip")
            return f"{name}@{peer['host']}" if peer.get("host") else str(name)
    return "-"


def networks(rows: Sequence[Row]) -> str:
    ordered = sorted(rows, key=lambda r: (r.get("vni") or 0, str(r.get("network_id"))))
    return table(
        [
            ("NETWORK", lambda r: short_id(r.get("network_id"))),
            ("STATUS", lambda r: "degraded" if r.get("degraded") else "ok"),
            ("VNI", lambda r: r.get("vni")),
            ("VXLAN", lambda r: r.get("vxlan_name")),
            ("BRIDGE", lambda r: r.get("bridge_name")),
            ("MTU", lambda r: f"{cell(r.get('vxlan_mtu'))}/{cell(r.get('bridge_mtu'))}"),
            ("GATEWAYS", lambda r: r.get("gateways")),
            ("RESOLVE", lambda r: r.get("resolve")),
            ("SCOPE", lambda r: r.get("scope")),
            (
                "OPTIONS",
                lambda r: " ".join(f"{k}={v}" for k, v in (r.get("options") or {}).items()),
            ),
        ],
        ordered,
        "no networks (create one with `docker network create -d <driver> -o VxlanId=N ...`)",
    )


def endpoints(rows: Sequence[Row]) -> str:
    ordered = sorted(rows, key=lambda r: (str(r.get("network_id")), str(r.get("host_ifname"))))
    return table(
        [
            ("ENDPOINT", lambda r: short_id(r.get("endpoint_id"))),
            ("NETWORK", lambda r: short_id(r.get("network_id"))),
            ("HOST-IF", lambda r: r.get("host_ifname")),
            ("CONTAINER-IF", lambda r: r.get("container_ifname")),
            ("MAC", lambda r: r.get("mac")),
            ("ADDRESS", lambda r: r.get("address")),
            ("ADDRESS6", lambda r: r.get("address6")),
            ("JOINED", lambda r: r.get("joined")),
        ],
        ordered,
        "no endpoints",
    )


def _vxlan_summary(vxlan: Row | None) -> str:
    if not vxlan:
        return ""
    parts = [
        f"{key} {vxlan[key]}"
        for key in ("dev", "local", "group", "port")
        if vxlan.get(key) not in (None, "")
    ]
    parts += [flag for flag in ("learning", "proxy", "l2miss", "l3miss") if vxlan.get(flag)]
    return " ".join(parts)


def links(rows: Sequence[Row]) -> str:
    return table(
        [
            ("IFINDEX", lambda r: r.get("ifindex")),
            ("IFNAME", lambda r: r.get("ifname")),
            ("KIND", lambda r: r.get("kind")),
            ("VNI", lambda r: r.get("vni")),
            ("MTU", lambda r: r.get("mtu")),
            ("MASTER", lambda r: r.get("master")),
            ("STATE", lambda r: f"{'UP' if r.get('up') else 'down'}/{cell(r.get('operstate'))}"),
            ("NETWORK", _owner),
            ("ENDPOINT", lambda r: short_id(r.get("endpoint_id"))),
            ("VXLAN", lambda r: _vxlan_summary(r.get("vxlan"))),
        ],
        sorted(rows, key=lambda r: r.get("ifindex") or 0),
        "no links",
    )


def fdb(rows: Sequence[Row], peers: Sequence[Row] = ()) -> str:
    """FDB entries; with `peers`, a REMOTE column names the container behind each MAC."""
    ordered = sorted(rows, key=lambda r: (str(r.get("ifname")), str(r.get("mac"))))
    return table(
        [
            ("MAC", lambda r: r.get("mac")),
            ("DST", lambda r: r.get("dst")),
            ("DEV", lambda r: r.get("ifname")),
            ("VNI", lambda r: r.get("vni")),
            ("STATE", lambda r: r.get("state")),
            ("FLAGS", lambda r: r.get("flags")),
            ("NETWORK", _owner),
            ("ENDPOINT", lambda r: short_id(r.get("endpoint_id"))),
            ("SOURCE", lambda r: r.get("source")),
            ("REMOTE", lambda r: _remote(peers, r.get("vni"), mac=r.get("mac"))),
        ],
        ordered,
        "no FDB entries",
    )


def neigh(rows: Sequence[Row], peers: Sequence[Row] = ()) -> str:
    """Neighbour (ARP/ND) entries; with `peers`, a REMOTE column names the container."""
    ordered = sorted(rows, key=lambda r: (str(r.get("ifname")), _ip_key(r.get("ip"))))
    return table(
        [
            ("IP", lambda r: r.get("ip")),
            ("MAC", lambda r: r.get("mac")),
            ("DEV", lambda r: r.get("ifname")),
            ("STATE", lambda r: r.get("state")),
            ("NETWORK", _owner),
            ("ENDPOINT", lambda r: short_id(r.get("endpoint_id"))),
            ("REMOTE", lambda r: _remote(peers, r.get("vni"), ip=r.get("ip"))),
        ],
        ordered,
        "no neighbour entries",
    )


def peers(rows: Sequence[Row]) -> str:
    ordered = sorted(rows, key=lambda r: (r.get("vni") or 0, _ip_key(r.get("ip"))))
    return table(
        [
            ("VNI", lambda r: r.get("vni")),
            ("IP", lambda r: r.get("ip")),
            ("MAC", lambda r: r.get("mac")),
            ("VTEP", lambda r: r.get("vtep")),
            ("SOURCE", lambda r: r.get("source")),
            ("HOST", lambda r: r.get("host")),
            ("CONTAINER", lambda r: r.get("container")),
        ],
        ordered,
        "no peers (add them to the --peers file, or start containers on other hosts with etcd)",
    )


def ago(timestamp: object, now: float) -> str:
    """`3s ago`, `4m ago`, `2h ago`: how stale a miss is matters more than its clock time."""
    if not isinstance(timestamp, int | float) or not timestamp:
        return "-"
    seconds = max(0.0, now - timestamp)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{int(seconds // size)}{unit} ago"
    return f"{int(seconds)}s ago"


def misses(rows: Sequence[Row], now: float | None = None) -> str:
    """Misses in the server's order (most unanswered first)."""
    clock = time.time() if now is None else now
    return table(
        [
            ("TYPE", lambda r: r.get("type")),
            ("VNI", lambda r: r.get("vni")),
            ("DEV", lambda r: r.get("ifname")),
            ("SUBJECT", lambda r: r.get("subject")),
            ("COUNT", lambda r: r.get("count")),
            ("ANSWERED", lambda r: r.get("answered")),
            ("UNANSWERED", lambda r: r.get("unanswered")),
            ("FAILED", lambda r: r.get("failed", 0)),
            ("LAST SEEN", lambda r: ago(r.get("last_seen"), clock)),
        ],
        rows,
        "no misses",
    )


def ondemand(rows: Sequence[Row]) -> str:
    return table(
        [
            ("DEV", lambda r: r.get("ifname")),
            ("VNI", lambda r: r.get("vni")),
            ("MAC", lambda r: r.get("mac")),
            ("VTEP", lambda r: r.get("vtep")),
            ("IPS", lambda r: r.get("ips")),
            ("AGE", lambda r: f"{cell(r.get('age_seconds'))}s"),
            ("IDLE", lambda r: f"{cell(r.get('idle_seconds'))}s"),
            ("TIMEOUT", lambda r: f"{cell(r.get('idle_timeout'))}s"),
        ],
        rows,
        "no on-demand entries",
    )


# --- events ------------------------------------------------------------------


def _words(event: Row, *keys: str) -> list[str]:
    """`key value` pairs for the keys an event has a value for."""
    return [f"{key} {cell(event[key])}" for key in keys if event.get(key) not in (None, "", [])]


def _event_details(event: Row) -> str:
    kind = event.get("type")
    if kind == "l2miss":
        parts = [f"who has mac {event.get('mac')}?", *_words(event, "vni")]
    elif kind == "l3miss":
        parts = [f"who has {event.get('ip')}?", *_words(event, "vni")]
    elif kind == "fdb":
        parts = [cell(event.get("action")), cell(event.get("mac"))]
        parts += _words(event, "dst", "vni", "remote_vni", "port", "vlan")
        parts += [cell(event.get("state")), cell(event.get("flags"))]
    elif kind == "neigh":
        parts = [cell(event.get("action")), cell(event.get("ip"))]
        parts += [*_words(event, "mac"), cell(event.get("state"))]
    elif kind == "link":
        parts = [cell(event.get("action")), *_words(event, "kind", "vni", "mtu", "master")]
        parts.append(cell(event.get("operstate")))
        if len(event.get("changes") or ()) > 1:
            parts.append(f"changes {cell(event['changes'])}")
    elif kind == "populate":
        parts = [cell(event.get("result")), cell(event.get("subject"))]
        if event.get("peer_vtep"):
            parts.append(f"-> vtep {event['peer_vtep']}")
        parts += _words(event, "vni", "detail")
    elif kind == "resync":
        parts = [
            f"{cell(event.get('losses'))} losses (total {cell(event.get('total_losses'))});",
            "re-read",
            *_words(event, "links", "neighbours", "fdb"),
        ]
    elif kind == "decode_problem":
        parts = [cell(event.get("reason")), *_words(event, "msg_type")]
    else:
        common = {"type", "seq", "timestamp", "network_id", "endpoint_id", "foreign", "ifname"}
        parts = [f"{k}={cell(v)}" for k, v in event.items() if k not in common]
    return " ".join(parts)


def clock_time(timestamp: object, tz: tzinfo | None = None) -> str:
    if not isinstance(timestamp, int | float) or not timestamp:
        return "--:--:--.---"  # 0 means nobody stamped it
    return datetime.fromtimestamp(timestamp, tz).strftime("%H:%M:%S.%f")[:-3]


def event_line(event: Row, tz: tzinfo | None = None) -> str:
    """`HH:MM:SS.mmm  TYPE  IFNAME  details  net=… ep=…  #seq`; fixed widths, since a stream cannot be aligned after the fact."""
    owner = []
    if event.get("network_id"):
        owner.append(f"net={short_id(event['network_id'])}")
    if event.get("endpoint_id"):
        owner.append(f"ep={short_id(event['endpoint_id'])}")
    fields = [
        clock_time(event.get("timestamp"), tz),
        f"{cell(event.get('type')):<8}",
        f"{cell(event.get('ifname')):<15}",
        _event_details(event),
        *owner,
    ]
    if event.get("seq") is not None:
        fields.append(f"#{event['seq']}")
    return "  ".join(fields)


# --- doctor ------------------------------------------------------------------


class FindingLike(Protocol):
    """What `doctor.Finding` offers; a protocol so views need not import the doctor."""

    @property
    def level(self) -> str: ...
    @property
    def network_id(self) -> str | None: ...
    @property
    def check(self) -> str: ...
    @property
    def message(self) -> str: ...


_LABEL = {"ok": "ok", "warn": "WARN", "error": "ERROR"}


def format_findings(findings: Sequence[FindingLike], width: int = 100) -> str:
    """Findings grouped by network, wrapped under their check name, then a one-line summary."""
    lines: list[str] = []
    current: object = object()
    for finding in findings:
        if finding.network_id != current:
            current = finding.network_id
            lines += [""] if lines else []
            lines.append(
                f"network {short_id(finding.network_id)}" if finding.network_id else "host"
            )
        head = f"  {_LABEL.get(finding.level, finding.level):<5}  {finding.check:<15}  "
        pad = " " * len(head)
        wrapped = textwrap.wrap(finding.message, width - len(head), break_on_hyphens=False)
        lines += [head + wrapped[0], *(pad + rest for rest in wrapped[1:])] if wrapped else [head]
    errors = sum(f.level == "error" for f in findings)
    warnings = sum(f.level == "warn" for f in findings)
    summary = f"{errors} error{'s' * (errors != 1)}, {warnings} warning{'s' * (warnings != 1)}"
    summary = summary if errors or warnings else "all checks passed"
    return "\n".join([*lines, "", summary]) if lines else summary


TABLES: dict[str, Callable[[Sequence[Row]], str]] = {
    "networks": networks,
    "endpoints": endpoints,
    "links": links,
    "fdb": fdb,
    "neigh": neigh,
    "peers": peers,
    "misses": misses,
    "ondemand": ondemand,
}
