"""The observe verbs end to end against a tiny real HTTP server on a unix socket (and TCP).

No daemon: a stdlib `http.server` in a thread serves canned JSON per path and
NDJSON for /events, and records each request, so the client's transport, query
encoding, streaming and error wording are all exercised for real.
"""

from __future__ import annotations

import argparse
import errno
import io
import json
import socket
import socketserver
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from vxlan_evt.cli.client import ClientError, ObserveClient, encode_params
from vxlan_evt.cli.verbs import add_verbs, run_verb
from vxlan_evt.testing.observe_samples import NET, healthy

EVENTS = [
    {"type": "l3miss", "seq": 1, "timestamp": 1714566896.5, "network_id": NET,
     "endpoint_id": None, "foreign": False, "ifindex": 5, "ifname": "vx-42", "vni": 42,
     "ip": "192.168.42.9"},
    {"type": "populate", "seq": 2, "timestamp": 1714566896.6, "network_id": NET,
     "endpoint_id": None, "foreign": False, "miss": "l3miss", "vni": 42, "ifname": "vx-42",
     "subject": "192.168.42.9", "result": "unanswered", "peer_vtep": None,
     "detail": "not in the peer table"},
    {"type": "link", "seq": 3, "timestamp": 1714566897.0, "network_id": None,
     "endpoint_id": None, "foreign": True, "action": "down", "ifindex": 2, "ifname": "eth1",
     "kind": "veth", "vni": None, "mtu": 1500, "master": None, "ifalias": None,
     "operstate": "DOWN", "up": False, "mac": None, "changes": ["down"]},
]  # fmt: skip


@dataclass
class Canned:
    """What the fake daemon serves, and what it was asked."""

    documents: dict[str, Any]
    events: list[dict[str, Any]]
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    hang: bool = False


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"  # close-delimited bodies, like a stream that just ends
    canned: Canned

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test output is the client's."""

    def send(self, status: int, body: bytes, content_type: str = "application/json") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        query = {k: v[-1] for k, v in parse_qs(url.query).items()}
        canned = self.server.canned  # type: ignore[attr-defined]
        canned.requests.append((url.path, query))
        name = url.path.strip("/")
        if canned.hang:
            canned.stop.wait(10)
            return
        if name == "events":
            self.events(canned, query)
        elif name == "metrics":
            self.send(200, b"vxlan_evt_misses_total 3.0\n", "text/plain; version=0.0.4")
        elif name in canned.documents:
            self.send(200, json.dumps(canned.documents[name]).encode() + b"\n")
        else:
            known = ", ".join(sorted(["events", "healthz", "metrics", *canned.documents]))
            error = {"error": f"no such resource /{name}; try one of: {known}"}
            self.send(404, json.dumps(error).encode())

    def events(self, canned: Canned, query: dict[str, str]) -> None:
        if query.get("ifname") == "bad":
            self.send(400, b'{"error": "ifname: no such interface"}')
            return
        types = set(filter(None, query.get("type", "").split(",")))
        since = int(query.get("since", "0"))
        wanted = [
            e for e in canned.events if e["seq"] > since and (not types or e["type"] in types)
        ]
        self.send(200, b"", "application/x-ndjson")
        for event in wanted:
            self.wfile.write(json.dumps(event).encode() + b"\n")
            self.wfile.flush()
        if query.get("follow") == "1":
            canned.stop.wait(10)  # an open stream with nothing new, until the test ends


class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    canned: Canned


class TcpServer(ThreadingHTTPServer):
    canned: Canned


@dataclass
class Api:
    socket: Path
    url: str
    canned: Canned


@pytest.fixture
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Api]:
    docs = healthy()
    canned = Canned(documents={**docs, "healthz": {"status": "ok"}}, events=list(EVENTS))
    path = tmp_path_factory.mktemp("api") / "api.sock"  # short: sun_path holds 108 bytes
    servers: list[socketserver.BaseServer] = [
        UnixServer(str(path), Handler),
        TcpServer(("127.0.0.1", 0), Handler),
    ]
    threads = []
    for server in servers:
        server.canned = canned  # type: ignore[attr-defined]
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
        thread.start()
        threads.append(thread)
    port = servers[1].server_address[1]  # type: ignore[index]
    yield Api(socket=path, url=f"http://127.0.0.1:{port}", canned=canned)
    canned.stop.set()
    for server, thread in zip(servers, threads, strict=True):
        server.shutdown()
        server.server_close()
        thread.join()


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="vxlan-evt")
    verbs = parser.add_subparsers(dest="verb", required=True)
    verbs.add_parser("serve")  # the lead's verb lives next to ours
    add_verbs(verbs)
    return parser.parse_args(argv)


def run(api: Api | None, *argv: str, out: io.StringIO | None = None) -> tuple[int, str, str]:
    where = ["--api-socket", str(api.socket)] if api is not None else []
    out = out or io.StringIO()
    err = io.StringIO()
    code = run_verb(parse(*argv, *where), out, err)
    return code, out.getvalue(), err.getvalue()


def test_tables_for_people(api: Api) -> None:
    code, out, err = run(api, "fdb")
    assert (code, err) == (0, "")
    lines = out.splitlines()
    assert lines[0].split()[:3] == ["MAC", "DST", "DEV"]
    assert any(line.startswith("02:42:c0:a8:2a:03") and "web@hostb" in line for line in lines)
    assert [path for path, _ in api.canned.requests] == ["/fdb", "/peers"]

    for verb, first in [("neigh", "IP"), ("links", "IFINDEX"), ("peers", "VNI"),
                        ("networks", "NETWORK"), ("endpoints", "ENDPOINT"),
                        ("misses", "TYPE")]:  # fmt: skip
        code, out, _ = run(api, verb)
        assert code == 0 and out.split()[0] == first, verb


def test_json_is_the_servers_document(api: Api) -> None:
    for verb in ("fdb", "neigh", "links", "peers", "networks", "endpoints", "misses"):
        code, out, _ = run(api, verb, "--json")
        assert code == 0 and json.loads(out) == api.canned.documents[verb]


def test_network_filter(api: Api) -> None:
    api.canned.documents["fdb"].append(
        dict(api.canned.documents["fdb"][0], network_id="f" * 64, mac="02:42:00:00:00:99")
    )
    _, out, _ = run(api, "fdb", "--json", "--network", NET[:8])
    rows = json.loads(out)
    assert rows and all(r["network_id"] == NET for r in rows)
    # Peers carry no network ID: they are matched by the network's VNI.
    _, out, _ = run(api, "peers", "--json", "--network", NET[:8])
    assert {p["vni"] for p in json.loads(out)} == {42}


def test_events_history_with_filters(api: Api) -> None:
    code, out, _ = run(
        api, "events", "--type", "l3miss,populate", "--since", "0", "--network", "a1b2"
    )
    assert code == 0
    lines = out.splitlines()
    assert len(lines) == 2
    assert "l3miss" in lines[0] and "who has 192.168.42.9?" in lines[0]
    assert "unanswered 192.168.42.9" in lines[1] and "not in the peer table" in lines[1]
    path, query = api.canned.requests[-1]
    assert path == "/events"
    assert query == {"type": "l3miss,populate", "since": "0", "network": "a1b2"}


def test_events_as_ndjson(api: Api) -> None:
    code, out, _ = run(api, "events", "--json", "--since", "1")
    assert code == 0
    assert [json.loads(line) for line in out.splitlines()] == EVENTS[1:]


class StopAfter(io.StringIO):
    """Stands in for the terminal: the operator presses Ctrl-C after `lines` lines."""

    def __init__(self, lines: int) -> None:
        super().__init__()
        self.left = lines

    def write(self, text: str) -> int:
        if self.left == 0:
            raise KeyboardInterrupt
        self.left -= 1
        return super().write(text)


def test_events_follow_streams_and_stops_cleanly_on_ctrl_c(api: Api) -> None:
    out = StopAfter(lines=2)
    code, text, err = run(api, "events", "--follow", "--ifname", "vx-42", out=out)
    assert code == 130 and err == ""
    assert len(text.splitlines()) == 2
    assert api.canned.requests[-1][1] == {"ifname": "vx-42", "follow": "1"}


def test_interrupt_while_waiting_for_events(api: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(self: ObserveClient, **params: Any) -> Iterator[dict[str, Any]]:
        raise KeyboardInterrupt
        yield {}

    monkeypatch.setattr(ObserveClient, "iter_events", interrupted)
    assert run(api, "events", "-f")[0] == 130


def test_doctor(api: Api) -> None:
    code, out, _ = run(api, "doctor")
    assert code == 0
    assert out.startswith(f"network {NET[:12]}\n") and out.endswith("all checks passed\n")
    requested = {path for path, _ in api.canned.requests}
    assert {"/networks", "/links", "/fdb", "/neigh", "/peers", "/misses", "/endpoints"} <= requested

    api.canned.documents["links"][3]["up"] = False  # vx-42 down
    code, out, _ = run(api, "doctor", NET[:6], "--json")
    findings = json.loads(out)
    assert code == 1
    assert {"level": "error", "network_id": NET, "check": "vxlan-link",
            "message": "vx-42 is down: nothing leaves this host; `ip link set vx-42 up`"} in findings  # fmt: skip

    code, out, _ = run(api, "doctor", "nope")
    assert code == 1 and "no network matches 'nope'" in out


def test_metrics(api: Api) -> None:
    assert run(api, "metrics") == (0, "vxlan_evt_misses_total 3.0\n", "")


def test_over_tcp(api: Api) -> None:
    code, out, _ = run(None, "peers", "--json", "--api-url", api.url + "/")
    assert code == 0 and json.loads(out) == api.canned.documents["peers"]


def test_missing_socket_is_explained(tmp_path: Path) -> None:
    code, out, err = run(None, "fdb", "--api-socket", str(tmp_path / "api.sock"))
    assert (code, out) == (1, "")
    assert err == (
        f"vxlan-evt: vxlan-evt is not running here (no API socket at {tmp_path}/api.sock); "
        "start it with `vxlan-evt serve` or pass --api-socket\n"
    )


def test_stale_socket_is_explained(tmp_path: Path) -> None:
    path = tmp_path / "api.sock"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))  # bound, never listening: what a crashed daemon leaves
    code, _, err = run(None, "peers", "--api-socket", str(path))
    assert code == 1 and "nothing answers on" in err and "a socket left by a daemon" in err


def test_unreachable_url_is_explained() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # nobody listens here
        code, _, err = run(None, "peers", "--api-url", f"http://127.0.0.1:{port}")
    assert code == 1 and f"cannot reach the observe API at http://127.0.0.1:{port}" in err


def test_http_errors_show_the_servers_words(api: Api) -> None:
    code, _, err = run(api, "ondemand")
    assert code == 1
    assert err.startswith("vxlan-evt: no such resource /ondemand; try one of: endpoints, events")
    code, _, err = run(api, "events", "--ifname", "bad")
    assert (code, err) == (1, "vxlan-evt: ifname: no such interface\n")


def test_timeout_is_explained(api: Api) -> None:
    api.canned.hang = True
    code, _, err = run(api, "links", "--timeout", "0.2")
    assert code == 1 and "did not answer within 0.2 s" in err


def test_permission_denied_says_run_as_root(tmp_path: Path) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("[Errno 13] Permission denied") from PermissionError(
            errno.EACCES, "Permission denied"
        )

    with ObserveClient(socket_path=tmp_path / "api.sock") as client:
        client._reachable = True  # as if the socket were there: the failure comes from httpx
        client._http = httpx.Client(transport=httpx.MockTransport(refuse), base_url="http://x")
        with pytest.raises(ClientError, match=r"permission denied on .*api.sock: run as root"):
            client.get_json("fdb")


def test_client_directly(api: Api) -> None:
    with ObserveClient(socket_path=api.socket) as client:
        assert client.get_json("healthz") == {"status": "ok"}
        assert [e["seq"] for e in client.iter_events(type=["link"])] == [3]
        with pytest.raises(ClientError, match="sent /metrics as something other than JSON"):
            client.get_json("metrics")


def test_query_encoding() -> None:
    assert encode_params(
        {"type": ["l3miss", "l2miss"], "since": 0, "follow": True, "network": None, "x": False}
    ) == {"type": "l3miss,l2miss", "since": "0", "follow": "1"}
    assert encode_params({"type": []}) == {}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["events", "--type", "l3mis"], "unknown event type l3mis; choose from l2miss,l3miss"),
        (["events", "--since", "-1"], "'-1' is not an event sequence number"),
        (["fdb", "--api-socket", "/x", "--api-url", "http://y"], "not allowed with argument"),
    ],
)
def test_bad_arguments(argv: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        parse(*argv)
    assert message in capsys.readouterr().err


def test_broken_pipe_is_quiet(api: Api) -> None:
    class Closed(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(errno.EPIPE, "Broken pipe")

    assert run(api, "peers", out=Closed()) == (0, "", "")


def test_defaults() -> None:
    args = parse("events")
    assert args.api_socket == Path("/run/vxlan-evt/api.sock") and args.api_url is None
    assert (args.follow, args.json, args.type, args.since) == (False, False, None, None)
    assert parse("doctor").network is None and parse("doctor", "vx-42").network == "vx-42"
    assert run_verb(parse("serve"), io.StringIO(), io.StringIO()) == 2


def test_the_cli_offers_every_event_type_and_table_the_daemon_serves() -> None:
    """One list each, in the model: `events --type addr` once was refused by a stale copy."""
    from vxlan_evt.cli import views
    from vxlan_evt.cli.verbs import event_types
    from vxlan_evt.model.events import EVENT_TYPES
    from vxlan_evt.model.tables import OBSERVE_TABLES

    assert "addr" in EVENT_TYPES
    assert event_types(",".join(EVENT_TYPES)) == list(EVENT_TYPES)
    parser = argparse.ArgumentParser()
    add_verbs(parser.add_subparsers(dest="verb"))
    assert parser.parse_args(["events", "--type", "addr"]).type == ["addr"]
    for name in OBSERVE_TABLES:
        assert parser.parse_args([name]).observe_verb == name
    assert views.TABLES.keys() == OBSERVE_TABLES.keys()
