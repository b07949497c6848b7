"""A cap on the observe API's TCP clients, as ASGI middleware in front of the app.

`--api-listen` opens the read-only API to whoever reaches the port; each request costs a
kernel dump or holds a stream. Over the cap a TCP client gets a short 503 at once (never
a queue that grows). Requests on the unix socket (root only; hypercorn gives them no
`client` address) pass uncounted, so the operator's CLI always gets through.
"""

from __future__ import annotations

import json
import logging

from hypercorn.typing import (
    ASGIFramework,
    ASGIReceiveCallable,
    ASGISendCallable,
    HTTPResponseBodyEvent,
    HTTPResponseStartEvent,
    Scope,
)

log = logging.getLogger(__name__)


class TcpRequestCap:
    def __init__(self, app: ASGIFramework, limit: int) -> None:
        self.app = app
        self.limit = limit
        self.active = 0
        self.refused = 0

    async def __call__(
        self, scope: Scope, receive: ASGIReceiveCallable, send: ASGISendCallable
    ) -> None:
        if scope["type"] != "http" or scope.get("client") is None:
            await self.app(scope, receive, send)
            return
        client = scope["client"]
        if self.active >= self.limit:
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.warning(
                    "observe API: %d TCP requests at once, the cap; refused=%d (latest from %s)",
                    self.limit,
                    self.refused,
                    client[0] if client else "?",
                )
            await _refuse(send, self.limit)
            return
        self.active += 1
        try:
            await self.app(scope, receive, send)
        finally:
            self.active -= 1


async def _refuse(send: ASGISendCallable, limit: int) -> None:
    body = (
        json.dumps(
            {
                "error": f"busy: {limit} requests of TCP clients are being served; retry later"
                " (the unix socket is not capped)"
            }
        )
        + "\n"
    ).encode()
    await send(
        HTTPResponseStartEvent(
            type="http.response.start",
            status=503,
            headers=[
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"retry-after", b"1"),
            ],
        )
    )
    await send(HTTPResponseBodyEvent(type="http.response.body", body=body, more_body=False))
