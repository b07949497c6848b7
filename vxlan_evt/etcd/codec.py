"""The pure half of the etcd client: JSON-gateway documents in, typed values out.

Pure (dicts in, tuples out), so each gateway quirk is unit-tested with captured
documents; `etcd_client.EtcdClient` adds only HTTP, endpoint failover and the token.
Gateway facts relied on (etcd 3.4.23): keys/values are base64, int64s are JSON strings,
zero-valued fields are *omitted* (`succeeded`, `value`, `deleted`, a PUT event's `type`,
the keepalive `TTL`). Unary errors are `{"error", "message", "code"}` with HTTP 4xx/5xx;
in a stream they are `{"error": {"grpc_code", "http_code", "message", "http_status"}}`.
Stream endpoints answer one `{"result": {...}}` object per line.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, NamedTuple, TypeVar

from vxlan_evt.model.errors import SystemFailure

log = logging.getLogger(__name__)

Json = dict[str, Any]
Doc = Mapping[str, Any]
Data = bytes | str
T = TypeVar("T")
R = TypeVar("R")
GRPC_NOT_FOUND, GRPC_OUT_OF_RANGE, GRPC_UNAVAILABLE, GRPC_UNAUTHENTICATED = 5, 11, 14, 16
# A stopping etcd breaks streams with 14 ("transport is closing") or, now and then,
# 1 ("grpc: the client connection is closing"); 4 is the gateway's own deadline.
GRPC_TRANSIENT = frozenset({1, 4, GRPC_UNAVAILABLE})


class EtcdError(SystemFailure):
    """etcd refused or failed a request; `code` is the gRPC status code when etcd sent one."""

    def __init__(self, message: str, *, code: int | None = None, compact_revision: int = 0) -> None:
        super().__init__(message)
        self.code = code
        self.compact_revision = compact_revision


class EtcdUnavailable(EtcdError):
    """No endpoint answered, or a stream broke: back off and retry (the outcome may be unknown)."""


class EtcdCompacted(EtcdError):
    """The revision asked for is compacted: re-read with `range`, then watch from there."""


class EtcdLeaseNotFound(EtcdError):
    """The lease expired or was revoked: grant a new one and re-put what it carried."""


class EtcdUnauthenticated(EtcdError):
    """Token missing, wrong or expired; the client re-authenticates once by itself."""


# ---------------------------------------------------------------- pure codec


def _bytes(data: Data) -> bytes:
    return data.encode() if isinstance(data, str) else data


def b64(data: Data) -> str:
    return base64.b64encode(_bytes(data)).decode("ascii")


def prefix_range_end(prefix: bytes) -> bytes:
    """The smallest key above every key that starts with `prefix` (etcd's `range_end`).

    Trailing 0xff bytes cannot be incremented, so they are dropped first; a prefix of
    only 0xff bytes (or an empty one) has no upper bound, which etcd spells b"\\0".
    """
    stripped = prefix.rstrip(b"\xff")
    if not stripped:
        return b"\x00"
    return stripped[:-1] + bytes([stripped[-1] + 1])


def key_range(key: Data, *, prefix: bool = False) -> Json:
    """`key`, plus `range_end` for a prefix; the empty prefix means every key."""
    raw = _bytes(key)
    if not prefix:
        return {"key": b64(raw)}
    return {"key": b64(raw or b"\x00"), "range_end": b64(prefix_range_end(raw))}


def encode_put(key: Data, value: Data, *, lease: int | None = None) -> Json:
    body = {"key": b64(key), "value": b64(value)}
    if lease:
        body["lease"] = str(lease)
    return body


CompareResult = Literal["EQUAL", "NOT_EQUAL", "GREATER", "LESS"]


class Compare:
    """Txn guards, as the JSON etcd wants: `Compare.absent(k)`, `Compare.mod_revision(k, r)`."""

    @staticmethod
    def version(key: Data, version: int, result: CompareResult = "EQUAL") -> Json:
        return {"key": b64(key), "target": "VERSION", "result": result, "version": str(version)}

    @staticmethod
    def absent(key: Data) -> Json:
        """The key does not exist (version 0): the guard of a compare-and-swap create."""
        return Compare.version(key, 0)

    @staticmethod
    def mod_revision(key: Data, revision: int, result: CompareResult = "EQUAL") -> Json:
        return {"key": b64(key), "target": "MOD", "result": result, "mod_revision": str(revision)}

    @staticmethod
    def value(key: Data, value: Data, result: CompareResult = "EQUAL") -> Json:
        return {"key": b64(key), "target": "VALUE", "result": result, "value": b64(value)}


class Op:
    """Txn request ops, as the JSON etcd wants: `Op.put(k, v)`, `Op.delete(k)`, `Op.range(k)`."""

    @staticmethod
    def put(key: Data, value: Data, *, lease: int | None = None) -> Json:
        return {"request_put": encode_put(key, value, lease=lease)}

    @staticmethod
    def delete(key: Data, *, prefix: bool = False) -> Json:
        return {"request_delete_range": key_range(key, prefix=prefix)}

    @staticmethod
    def range(key: Data, *, prefix: bool = False) -> Json:
        return {"request_range": key_range(key, prefix=prefix)}


def encode_watch_create(
    key: Data, *, prefix: bool = True, start_revision: int | None = None
) -> Json:
    request = {**key_range(key, prefix=prefix), "prev_kv": True}
    if start_revision is not None:
        request["start_revision"] = str(start_revision)
    return {"create_request": request}


@dataclass(frozen=True)
class KeyValue:
    key: bytes
    value: bytes
    create_revision: int
    mod_revision: int
    version: int
    lease: int


class RangeResult(NamedTuple):
    kvs: list[KeyValue]
    revision: int


class DeleteResult(NamedTuple):
    deleted: int
    revision: int


class PutResult(NamedTuple):
    revision: int


Response = RangeResult | PutResult | DeleteResult


class TxnResult(NamedTuple):
    succeeded: bool
    revision: int
    responses: list[Response]


class LeaseGrant(NamedTuple):
    lease_id: int
    ttl: int


@dataclass(frozen=True)
class WatchEvent:
    """A PUT or DELETE; a DELETE's `kv` has only key and mod_revision (see `prev_kv`)."""

    type: Literal["PUT", "DELETE"]
    kv: KeyValue
    prev_kv: KeyValue | None


class WatchBatch(NamedTuple):
    events: list[WatchEvent]
    revision: int


def decode_answer(what: str, decode: Callable[[Doc], R], doc: Doc) -> R:
    """`decode(doc)`, with any surprise in the document's shape (a proxy's page, another
    version's answer, a hostile server) raised as one EtcdError naming the call: the
    callers retry on EtcdError, never on a KeyError from deep inside a decoder."""
    try:
        return decode(doc)
    except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
        raise EtcdError(f"etcd: unexpected answer to {what}: {exc!r}"[:300]) from exc


def _int(doc: Doc, name: str) -> int:
    return int(doc.get(name, 0))


def _revision(doc: Doc) -> int:
    return _int(doc.get("header", {}), "revision")


def decode_kv(doc: Doc) -> KeyValue:
    ints = [_int(doc, name) for name in ("create_revision", "mod_revision", "version", "lease")]
    return KeyValue(
        base64.b64decode(doc.get("key", "")), base64.b64decode(doc.get("value", "")), *ints
    )


def decode_range(doc: Doc) -> RangeResult:
    return RangeResult([decode_kv(kv) for kv in doc.get("kvs", [])], _revision(doc))


def decode_delete(doc: Doc) -> DeleteResult:
    return DeleteResult(_int(doc, "deleted"), _revision(doc))


_TXN_DECODERS: dict[str, Callable[[Doc], Response]] = {
    "response_range": decode_range,
    "response_put": lambda doc: PutResult(_revision(doc)),
    "response_delete_range": decode_delete,
}


def decode_txn(doc: Doc) -> TxnResult:
    responses = [
        _TXN_DECODERS[kind](body)
        for item in doc.get("responses", [])
        for kind, body in item.items()
    ]
    return TxnResult(bool(doc.get("succeeded", False)), _revision(doc), responses)


def decode_keepalive(result: Doc) -> int:
    """The lease's new TTL; an absent TTL is how the gateway says the lease is gone."""
    ttl = _int(result, "TTL")
    if ttl <= 0:
        raise EtcdLeaseNotFound(f"etcd: lease {_int(result, 'ID')} not found", code=GRPC_NOT_FOUND)
    return ttl


def decode_error(doc: Doc, status: int = 0) -> EtcdError:
    """Map either gateway error shape (unary or in-stream) to a typed exception."""
    error = doc.get("error")
    if isinstance(error, Mapping):
        raw_code, message = error.get("grpc_code"), str(error.get("message", ""))
    else:
        raw_code, message = doc.get("code"), str(doc.get("message") or error or "")
    try:
        code = None if raw_code is None else int(raw_code)
    except (TypeError, ValueError):
        code = None
    text = f"etcd: {message or f'HTTP {status}'}"
    if code in GRPC_TRANSIENT or (code is None and status in (502, 503, 504)):
        return EtcdUnavailable(text, code=code)
    if code == GRPC_NOT_FOUND and "lease not found" in message:
        return EtcdLeaseNotFound(text, code=code)
    if code == GRPC_OUT_OF_RANGE and "compacted" in message:
        return EtcdCompacted(text, code=code)
    if code == GRPC_UNAUTHENTICATED:
        return EtcdUnauthenticated(text, code=code)
    return EtcdError(text, code=code)


def decode_stream_line(line: str) -> Json:
    """Unwrap one `{"result": ...}` line of a stream endpoint; an in-stream error raises."""
    try:
        doc = json.loads(line)
    except ValueError as exc:
        raise EtcdError(f"etcd: malformed stream line {line[:200]!r}") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("result"), dict):
        raise decode_error(doc if isinstance(doc, dict) else {})
    result: Json = doc["result"]
    return result


def decode_watch_response(result: Doc) -> WatchBatch:
    """The events of one watch response; a `canceled` one (compaction, auth) raises."""
    if result.get("canceled"):
        compact, reason = _int(result, "compact_revision"), str(result.get("cancel_reason", ""))
        if compact > 0:
            message = f"etcd: watch start revision is compacted (compact_revision {compact})"
            raise EtcdCompacted(message, compact_revision=compact)
        if "Unauthenticated" in reason or "user name is empty" in reason:
            raise EtcdUnauthenticated(f"etcd: watch refused: {reason}")
        raise EtcdError(f"etcd: watch canceled: {reason or 'no reason given'}")
    events = [
        WatchEvent(
            "DELETE" if event.get("type") == "DELETE" else "PUT",
            decode_kv(event["kv"]),
            decode_kv(event["prev_kv"]) if "prev_kv" in event else None,
        )
        for event in result.get("events", [])
    ]
    return WatchBatch(events, _revision(result))
