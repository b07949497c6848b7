"""The observe API: what the listener saw and what the kernel holds, read-only.

Thin on purpose: routes decode query parameters, ask an `Observer` (the
daemon's view of its state, bus and kernel) and encode JSON, NDJSON or SSE.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Protocol

from quart import Response, request
from quart_trio import QuartTrio

from vxlan_evt.model.defaults import MAX_EVENT_FOLLOWERS
from vxlan_evt.model.events import EVENT_TYPES
from vxlan_evt.resolve.bus import EventBus, Published


class ObservableEvent(Protocol):
    @property
    def type(self) -> str: ...

    def to_dict(self) -> dict[str, Any]: ...


Table = Callable[[], Awaitable[list[dict[str, Any]]]]


class Observer(Protocol):
    """What the observe API reads from; the daemon provides it."""

    bus: EventBus[Any]
    tables: Mapping[str, Table]

    def metrics(self) -> bytes: ...


class BadQuery(ValueError):
    """A query parameter the API cannot honour; answered with 400."""


def event_filter(args: Mapping[str, str]) -> Callable[[ObservableEvent], bool]:
    """`type` (comma list), `network` (ID prefix), `ifname`: all must match.

    An unknown type is refused rather than silently matching nothing forever.
    """
    types = {t.strip() for t in args.get("type", "").split(",") if t.strip()}
    unknown = sorted(types - set(EVENT_TYPES))
    if unknown:
        raise BadQuery(
            f"unknown event type {', '.join(map(repr, unknown))}; "
            f"known types: {', '.join(EVENT_TYPES)}"
        )
    network = args.get("network") or None
    ifname = args.get("ifname") or None

    def matches(event: ObservableEvent) -> bool:
        if types and event.type not in types:
            return False
        document = event.to_dict()
        if network is not None and not str(document.get("network_id") or "").startswith(network):
            return False
        return ifname is None or document.get("ifname") == ifname

    return matches


def encode_event(published: Published[Any]) -> dict[str, Any]:
    return {**published.event.to_dict(), "seq": published.seq}


def _since(args: Mapping[str, str]) -> int:
    raw = args.get("since", "0")
    try:
        since = int(raw)
    except ValueError as exc:
        raise BadQuery(f"since: {raw!r} is not an event sequence number") from exc
    if since < 0:
        raise BadQuery("since: must be 0 or more")
    return since


def _json(document: Any, status: int = 200) -> Response:
    return Response(
        json.dumps(document, indent=None) + "\n", status=status, content_type="application/json"
    )


def create_observe_app(
    observer: Observer, *, max_followers: int = MAX_EVENT_FOLLOWERS
) -> QuartTrio:
    """`max_followers`: each `follow` stream holds a subscription queue until it ends."""
    app = QuartTrio("vxlan_evt.observe")
    followers = 0

    @app.errorhandler(BadQuery)
    async def bad_query(exc: BadQuery) -> Response:
        return _json({"error": str(exc)}, 400)

    @app.get("/healthz")
    async def healthz() -> Response:
        return _json({"status": "ok"})

    @app.get("/metrics")
    async def metrics() -> Response:
        return Response(observer.metrics(), content_type="text/plain; version=0.0.4")

    @app.get("/events")
    async def events() -> Response:
        args = request.args
        matches = event_filter(args)
        since = _since(args)
        follow = args.get("follow", "0").lower() in {"1", "true", "yes"}
        sse = "text/event-stream" in request.headers.get("Accept", "")
        if follow and followers >= max_followers:
            return _json(
                {"error": f"busy: {max_followers} clients follow the events already; retry later"},
                503,
            )

        def frame(published: Published[Any]) -> bytes:
            document = json.dumps(encode_event(published))
            if sse:
                return f"id: {published.seq}\nevent: {published.event.type}\ndata: {document}\n\n".encode()
            return document.encode() + b"\n"

        async def stream() -> AsyncIterator[bytes]:
            nonlocal followers
            followers += follow  # counted from the start: history can be long
            try:
                # Subscribe before reading history so nothing falls between the two.
                async with observer.bus.subscribe(matches) as subscription:
                    last = since
                    for published in observer.bus.history(since=since, predicate=matches):
                        last = published.seq
                        yield frame(published)
                    if not follow:
                        return
                    async for published in subscription:
                        if published.seq > last:
                            yield frame(published)
            finally:
                followers -= follow

        response = Response(
            stream(), content_type="text/event-stream" if sse else "application/x-ndjson"
        )
        response.timeout = None
        return response

    @app.get("/<name>")
    async def table(name: str) -> Response:
        reader = observer.tables.get(name)
        if reader is None:
            known = ", ".join(sorted(["events", "healthz", "metrics", *observer.tables]))
            return _json({"error": f"no such resource /{name}; try one of: {known}"}, 404)
        return _json(await reader())

    return app
