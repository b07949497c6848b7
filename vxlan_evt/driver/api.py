"""Docker's plugin protocol over HTTP: decode, call the service, encode. No logic here."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import trio
from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.exceptions import RequestEntityTooLarge

from vxlan_evt.driver.protocol import (
    MAX_BODY_BYTES,
    PLUGIN_CONTENT_TYPE,
    Handler,
    implemented_interfaces,
    parse_body,
)
from vxlan_evt.model.errors import UserError
from vxlan_evt.model.metrics import Metrics

log = logging.getLogger(__name__)


def _reply(document: dict[str, Any], status: int = 200) -> Response:
    return Response(json.dumps(document), status=status, content_type=PLUGIN_CONTENT_TYPE)


class InFlight:
    """Counts calls being handled, so shutdown can wait for them and not for idle clients.

    Docker keeps its connection to the plugin open between calls; waiting for
    connections to close would hold every shutdown for the whole grace period.
    """

    def __init__(self) -> None:
        self.active = 0
        self._idle = trio.Event()
        self._idle.set()

    @contextmanager
    def call(self) -> Iterator[None]:
        if self.active == 0:
            self._idle = trio.Event()
        self.active += 1
        try:
            yield
        finally:
            self.active -= 1
            if self.active == 0:
                self._idle.set()

    async def wait_idle(self) -> None:
        await self._idle.wait()


def create_plugin_app(
    handlers: Mapping[str, Handler],
    in_flight: InFlight | None = None,
    metrics: Metrics | None = None,
) -> QuartTrio:
    """The legacy plugin API: every call is `POST /<Method>` with a JSON body.

    `handlers` are every method served on this socket (the network driver's and the
    IPAM driver's); `Plugin.Activate` names the interfaces they implement, so the
    answer always matches what is served.
    """
    app = QuartTrio("vxlan_evt.plugin")
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    tracker = in_flight or InFlight()
    implements = implemented_interfaces(handlers)

    async def activate(_body: Mapping[str, Any]) -> dict[str, Any]:
        return {"Implements": list(implements)}

    served: dict[str, Handler] = {**handlers, "Plugin.Activate": activate}

    @app.post("/<path:method>")
    async def call(method: str) -> Response:
        with tracker.call():
            return await dispatch(method)

    async def dispatch(method: str) -> Response:
        handler = served.get(method)
        if handler is None:
            return _reply({"Err": f"vxlan-evt does not implement {method}"}, 404)
        started = time.monotonic()
        try:
            body = await request.get_data()
        except RequestEntityTooLarge:
            log.warning("refused %s: body larger than %d bytes", method, MAX_BODY_BYTES)
            return _reply({"Err": f"request body is larger than {MAX_BODY_BYTES} bytes"}, 413)
        try:
            result = await handler(parse_body(body))
        except UserError as exc:
            log.warning("refused %s: %s", method, exc)
            return _reply({"Err": str(exc)}, 400)
        except Exception as exc:
            log.exception("failed %s", method)
            return _reply({"Err": f"vxlan-evt failed in {method}: {exc}"}, 500)
        elapsed = time.monotonic() - started
        if metrics is not None:
            metrics.plugin_call_seconds.labels(method).observe(elapsed)
        log.debug("call %s took %.1f ms", method, elapsed * 1000)
        return _reply(result)

    return app
