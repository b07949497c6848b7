"""The observe API's HTTP surface, against an in-memory observer."""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Mapping
from typing import Any

import trio

from vxlan_evt.model.events import L3Miss, LinkEvent
from vxlan_evt.observe.api import Table, create_observe_app
from vxlan_evt.resolve.bus import EventBus

NET = "f" * 64


class FakeObserver:
    def __init__(self) -> None:
        self.bus: EventBus[Any] = EventBus()

        async def peers() -> list[dict[str, Any]]:
            return [{"vni": 42, "ip": "192.168.42.2"}]

        self.tables: Mapping[str, Table] = {"peers": peers}

    def metrics(self) -> bytes:
        return b"vxlan_evt_events_total 3.0\n"


def miss(ip: str, ifname: str = "vx-42", network_id: str | None = NET) -> L3Miss:
    return L3Miss(7, ifname, 42, ipaddress.ip_address(ip), network_id=network_id, foreign=False)


def link_down() -> LinkEvent:
    return LinkEvent("down", 7, "vx-42", "vxlan", 42, 1450, None, None, "DOWN")


async def get(observer: FakeObserver, path: str, **headers: str) -> tuple[int, str, str]:
    client = create_observe_app(observer).test_client()
    response = await client.get(path, headers=headers)
    body = await response.get_data(as_text=True)
    return response.status_code, body, response.headers["Content-Type"]


async def test_events_history_as_ndjson_with_filters() -> None:
    observer = FakeObserver()
    observer.bus.publish(miss("192.168.42.2"))
    observer.bus.publish(link_down())
    observer.bus.publish(miss("192.168.42.3", ifname="vx-9", network_id=None))
    status, body, content_type = await get(observer, "/events")
    assert status == 200 and content_type == "application/x-ndjson"
    lines = [json.loads(line) for line in body.splitlines()]
    assert [e["seq"] for e in lines] == [1, 2, 3]
    assert lines[0]["ip"] == "192.168.42.2" and lines[0]["type"] == "l3miss"

    _, body, _ = await get(observer, "/events?type=l3miss&ifname=vx-42")
    assert [json.loads(line)["ip"] for line in body.splitlines()] == ["192.168.42.2"]
    _, body, _ = await get(observer, f"/events?network={NET[:12]}")
    assert len(body.splitlines()) == 1
    _, body, _ = await get(observer, "/events?since=2")
    assert [json.loads(line)["seq"] for line in body.splitlines()] == [3]


async def test_events_as_server_sent_events() -> None:
    observer = FakeObserver()
    observer.bus.publish(link_down())
    status, body, content_type = await get(observer, "/events", Accept="text/event-stream")
    assert status == 200 and content_type.startswith("text/event-stream")
    assert body.startswith("id: 1\nevent: link\ndata: {")


async def test_follow_streams_live_events() -> None:
    observer = FakeObserver()
    observer.bus.publish(miss("192.168.42.2"))
    app = create_observe_app(observer)
    received: list[dict[str, Any]] = []
    got_both = trio.Event()
    async with app.test_app() as test_app, trio.open_nursery() as nursery:
        client = test_app.test_client()
        async with client.request("/events?follow=1") as connection:
            await connection.send_complete()

            async def read() -> None:
                buffer = b""
                while len(received) < 2:
                    buffer += await connection.receive()
                    *lines, buffer = buffer.split(b"\n")
                    received.extend(json.loads(line) for line in lines if line)
                got_both.set()

            nursery.start_soon(read)
            await trio.sleep(0.05)
            observer.bus.publish(link_down())
            with trio.fail_after(5):
                await got_both.wait()
            nursery.cancel_scope.cancel()
    assert [e["type"] for e in received] == ["l3miss", "link"]


async def test_bad_since_is_a_400() -> None:
    status, body, _ = await get(FakeObserver(), "/events?since=yesterday")
    assert status == 400 and "since" in json.loads(body)["error"]


async def test_unknown_event_type_is_a_400_naming_the_known_ones() -> None:
    status, body, _ = await get(FakeObserver(), "/events?type=l3miss,l3mis")
    error = json.loads(body)["error"]
    assert status == 400 and "'l3mis'" in error and "l2miss" in error


async def test_tables_metrics_health_and_404() -> None:
    observer = FakeObserver()
    status, body, _ = await get(observer, "/peers")
    assert status == 200 and json.loads(body) == [{"vni": 42, "ip": "192.168.42.2"}]
    status, body, content_type = await get(observer, "/metrics")
    assert "vxlan_evt_events_total" in body and content_type.startswith("text/plain")
    assert (await get(observer, "/healthz"))[:2] == (200, '{"status": "ok"}\n')
    status, body, _ = await get(observer, "/nope")
    assert status == 404 and "peers" in json.loads(body)["error"]


async def follow_over_asgi(
    app: Any, leave: trio.Event, chunks: trio.MemorySendChannel[bytes], *, task_status: Any
) -> None:
    """One follower as hypercorn drives it: the request, then a disconnect on `leave`."""
    messages = iter([{"type": "http.request", "body": b"", "more_body": False}])

    async def receive() -> dict[str, Any]:
        for message in messages:
            return message
        await leave.wait()
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        if message["type"] == "http.response.start":
            task_status.started(message["status"])
        elif message.get("body"):
            await chunks.send(message["body"])

    scope = {
        "type": "http",
        "http_version": "1.1",
        "method": "GET",
        "scheme": "http",
        "path": "/events",
        "root_path": "",
        "query_string": b"follow=1",
        "headers": [(b"host", b"localhost")],
        "client": None,
        "server": None,
    }
    await app(scope, receive, send)


async def test_followers_over_the_cap_get_a_503_until_one_leaves() -> None:
    observer = FakeObserver()
    observer.bus.publish(link_down())
    app = create_observe_app(observer, max_followers=1)
    chunks_in, chunks_out = trio.open_memory_channel[bytes](10)
    first_leaves = trio.Event()
    async with app.test_app() as test_app, trio.open_nursery() as nursery:
        client = test_app.test_client()
        assert await nursery.start(follow_over_asgi, app, first_leaves, chunks_in) == 200
        with trio.fail_after(5):
            assert b'"link"' in await chunks_out.receive()  # the stream has started
        refused = await client.get("/events?follow=1")
        assert refused.status_code == 503
        assert "1 clients follow" in (await refused.get_json())["error"]
        assert (await client.get("/events")).status_code == 200  # one-shot: not a follower
        first_leaves.set()
        for _ in range(100):  # the slot comes back once the first stream's cleanup has run
            status = await nursery.start(follow_over_asgi, app, trio.Event(), chunks_in)
            if status == 200:
                break
            await trio.sleep(0.01)
        else:
            raise AssertionError("the follower slot was never given back")
        nursery.cancel_scope.cancel()
