"""The TCP request cap in front of the observe API, driven as plain ASGI."""

from __future__ import annotations

import json
from typing import Any

import trio

from vxlan_evt.observe.limits import TcpRequestCap


class SlowApp:
    """An inner app that answers 200 once `release` is set, counting requests it saw."""

    def __init__(self) -> None:
        self.release = trio.Event()
        self.inside = 0

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        self.inside += 1
        await self.release.wait()
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b"ok", "more_body": False})


def http_scope(client: tuple[str, int] | None) -> dict[str, Any]:
    return {"type": "http", "path": "/fdb", "client": client}


async def call(cap: TcpRequestCap, scope: dict[str, Any]) -> list[dict[str, Any]]:
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    await cap(scope, receive, send)  # type: ignore[arg-type]
    return sent


async def test_over_the_cap_a_tcp_client_gets_a_503_at_once_and_the_slot_comes_back() -> None:
    inner = SlowApp()
    cap = TcpRequestCap(inner, limit=2)
    answered: list[list[dict[str, Any]]] = []

    async def held() -> None:
        answered.append(await call(cap, http_scope(("192.0.2.9", 4000))))

    async with trio.open_nursery() as nursery:
        nursery.start_soon(held)
        nursery.start_soon(held)
        await trio.testing.wait_all_tasks_blocked()
        assert cap.active == 2
        with trio.fail_after(1):  # refused without waiting for the held two
            refused = await call(cap, http_scope(("192.0.2.9", 4001)))
        assert refused[0]["status"] == 503
        assert (b"retry-after", b"1") in refused[0]["headers"]
        assert "busy: 2 requests" in json.loads(refused[1]["body"])["error"]
        assert inner.inside == 2 and cap.refused == 1
        inner.release.set()
    assert [sent[0]["status"] for sent in answered] == [200, 200]
    assert cap.active == 0
    assert (await call(cap, http_scope(("192.0.2.9", 4002))))[0]["status"] == 200


async def test_the_unix_socket_and_lifespan_are_never_capped() -> None:
    inner = SlowApp()
    inner.release.set()
    cap = TcpRequestCap(inner, limit=0)
    assert (await call(cap, http_scope(None)))[0]["status"] == 200  # unix: no client address
    assert (await call(cap, http_scope(("192.0.2.9", 4000))))[0]["status"] == 503
    await call(cap, {"type": "lifespan"})
    assert inner.inside == 2 and cap.active == 0
