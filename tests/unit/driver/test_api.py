"""The plugin API's edge: whatever arrives, Docker gets a JSON answer with a status that
says whose fault it was, and nothing reaches a handler that the protocol refuses."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from vxlan_evt.driver.api import create_plugin_app
from vxlan_evt.driver.protocol import MAX_BODY_BYTES, Handler, parse_body

calls: list[Mapping[str, Any]] = []


async def create_network(body: Mapping[str, Any]) -> dict[str, Any]:
    calls.append(body)
    return {}


HANDLERS: dict[str, Handler] = {"NetworkDriver.CreateNetwork": create_network}


async def post(body: bytes) -> tuple[int, Any]:
    client = create_plugin_app(HANDLERS).test_client()
    response = await client.post("/NetworkDriver.CreateNetwork", data=body)
    return response.status_code, json.loads(await response.get_data())


async def test_a_body_over_the_limit_is_413_and_reaches_no_handler() -> None:
    calls.clear()
    status, document = await post(b" " * (MAX_BODY_BYTES + 1))
    assert status == 413
    assert document == {"Err": f"request body is larger than {MAX_BODY_BYTES} bytes"}
    assert calls == []


async def test_a_body_at_the_limit_is_read() -> None:
    calls.clear()
    body = json.dumps({"NetworkID": "a" * 64, "Pad": "x" * 1000}).encode()
    status, _ = await post(body.ljust(MAX_BODY_BYTES))
    assert status == 200 and calls == [parse_body(body)]


async def test_deeply_nested_json_is_400_not_a_traceback() -> None:
    status, document = await post(b"[" * 50_000 + b"]" * 50_000)
    assert status == 400
    assert "nested too deeply" in document["Err"]


async def test_an_unknown_method_is_404_with_its_name() -> None:
    client = create_plugin_app(HANDLERS).test_client()
    response = await client.post("/NetworkDriver.Nope", data=b"{}")
    assert response.status_code == 404
    assert "NetworkDriver.Nope" in json.loads(await response.get_data())["Err"]
