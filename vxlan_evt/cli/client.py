"""A small synchronous client for the daemon's read-only observe API.

The troubleshooting verbs run once and exit, so a blocking httpx client is all
they need. Every failure becomes a `ClientError` whose message tells an
operator what to do next (start the daemon, run as root, fix a query), never
a transport traceback.
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import Any, TypeAlias

import httpx

from vxlan_evt.daemon.config import DEFAULT_API_SOCKET
from vxlan_evt.model.errors import VxlanEvtError

Param: TypeAlias = str | int | bool | Sequence[str] | None
_UDS_BASE = "http://vxlan-evt"  # host part is ignored on a unix socket


class ClientError(VxlanEvtError):
    """The observe API could not be reached or refused the request; the message says why."""


def encode_params(params: Mapping[str, Param]) -> dict[str, str]:
    """Query values as the API reads them: no Nones, `1` for true, comma lists."""
    out: dict[str, str] = {}
    for key, value in params.items():
        if value is None or value is False:
            continue
        if value is True:
            out[key] = "1"
        elif isinstance(value, str | int):
            out[key] = str(value)
        else:
            joined = ",".join(value)
            if joined:
                out[key] = joined
    return out


def _os_error(exc: BaseException) -> OSError | None:
    """The OSError under httpx's wrapping (ConnectError → ConnectError → OSError)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, OSError):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


class ObserveClient:
    """Talks to one daemon, over its unix socket (default) or a TCP URL (`--api-listen`)."""

    def __init__(
        self, socket_path: Path | None = None, url: str | None = None, timeout: float = 10
    ) -> None:
        self.socket_path = None if url else (socket_path or DEFAULT_API_SOCKET)
        self.url = url.rstrip("/") if url else None
        self.timeout = timeout
        self._reachable = False
        # No TLS on a unix socket or plain http: skip building a CA store (~70 ms a run).
        if self.socket_path is not None:
            transport = httpx.HTTPTransport(uds=str(self.socket_path), verify=False)
            self._http = httpx.Client(transport=transport, base_url=_UDS_BASE, timeout=timeout)
        else:
            verify = (self.url or "").startswith("https:")
            self._http = httpx.Client(base_url=self.url or "", timeout=timeout, verify=verify)

    @property
    def where(self) -> str:
        return str(self.url or self.socket_path)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ObserveClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def get_json(self, resource: str, **params: Param) -> Any:
        """GET /<resource> and decode its JSON document."""
        text = self.get_text(resource, **params)
        try:
            return json.loads(text)
        except ValueError as exc:
            raise ClientError(
                f"the observe API at {self.where} sent /{resource.lstrip('/')} as something "
                f"other than JSON: {text[:80]!r}"
            ) from exc

    def get_text(self, resource: str, **params: Param) -> str:
        """GET /<resource> as text (e.g. /metrics, Prometheus format)."""
        path = "/" + resource.lstrip("/")
        self._probe()
        try:
            response = self._http.get(path, params=encode_params(params))
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc
        self._check(response, path)
        return response.text

    def iter_events(self, **params: Param) -> Iterator[dict[str, Any]]:
        """Yield /events line by line (NDJSON) as they arrive; `follow=True` never ends.

        A following stream may be quiet for hours, so it has no read timeout;
        connecting still has one, so a wedged daemon is reported.
        """
        timeout = httpx.Timeout(self.timeout, read=None if params.get("follow") else self.timeout)
        query = encode_params(params)
        self._probe()
        try:
            with self._http.stream("GET", "/events", params=query, timeout=timeout) as response:
                if response.status_code >= 400:
                    response.read()
                    self._check(response, "/events")
                for line in response.iter_lines():
                    if line.strip():
                        yield self._decode_line(line)
        except httpx.HTTPError as exc:
            raise self._transport_error(exc) from exc

    def _decode_line(self, line: str) -> dict[str, Any]:
        try:
            document = json.loads(line)
        except ValueError as exc:
            raise ClientError(
                f"the event stream sent a line that is not JSON: {line[:80]!r}"
            ) from exc
        if not isinstance(document, dict):
            raise ClientError(f"the event stream sent a line that is not an event: {line[:80]!r}")
        return document

    def _check(self, response: httpx.Response, path: str) -> None:
        """Turn an HTTP error into the server's own words (`{"error": ...}`), else its text."""
        if response.status_code < 400:
            return
        message = response.text.strip()
        try:
            document = json.loads(message)
        except ValueError:
            document = None
        if isinstance(document, dict) and isinstance(document.get("error"), str):
            message = document["error"]
        raise ClientError(message or f"GET {path} failed with HTTP {response.status_code}")

    def _probe(self) -> None:
        """Connect to the unix socket once ourselves before httpx does.

        httpcore leaks its socket when a unix connect fails, and its error names
        no path; a plain connect here finds and explains every such failure.
        """
        if self.socket_path is None or self._reachable:
            return
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(self.timeout)
            try:
                sock.connect(str(self.socket_path))
            except OSError as exc:
                raise self._unix_error(exc) from exc
        self._reachable = True

    def _unix_error(self, cause: OSError) -> ClientError:
        if cause.errno == errno.ENOENT:
            return ClientError(
                f"vxlan-evt is not running here (no API socket at {self.socket_path}); "
                "start it with `vxlan-evt serve` or pass --api-socket"
            )
        if cause.errno in (errno.EACCES, errno.EPERM):
            return ClientError(
                f"permission denied on {self.socket_path}: run as root "
                "(the observe API socket is root-only)"
            )
        if cause.errno == errno.ECONNREFUSED:
            return ClientError(
                f"vxlan-evt is not running here (nothing answers on {self.socket_path}: "
                "a socket left by a daemon that died?); start it with `vxlan-evt serve`"
            )
        if isinstance(cause, TimeoutError):
            return self._timeout_error()
        return ClientError(f"cannot connect to {self.socket_path}: {cause.strerror or cause}")

    def _timeout_error(self) -> ClientError:
        return ClientError(
            f"the observe API at {self.where} did not answer within {self.timeout:g} s; "
            "is the daemon wedged? (its log says more)"
        )

    def _transport_error(self, exc: httpx.HTTPError) -> ClientError:
        if isinstance(exc, httpx.TimeoutException):
            return self._timeout_error()
        if isinstance(exc, httpx.RemoteProtocolError | httpx.ReadError):
            return ClientError(f"the observe API at {self.where} closed the connection: {exc}")
        cause = _os_error(exc)
        if self.socket_path is not None and cause is not None:
            return self._unix_error(cause)
        if self.url is not None and isinstance(exc, httpx.ConnectError):
            return ClientError(
                f"cannot reach the observe API at {self.url} ({cause or exc}); is `vxlan-evt "
                "serve --api-listen` running there?"
            )
        return ClientError(f"the observe API at {self.where} failed: {exc}")
