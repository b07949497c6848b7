"""The pure half of the etcd client, against documents captured from etcd 3.4.23's gateway."""

from __future__ import annotations

import json

import pytest

from vxlan_evt.etcd.codec import (
    Compare,
    DeleteResult,
    EtcdCompacted,
    EtcdError,
    EtcdLeaseNotFound,
    EtcdUnauthenticated,
    EtcdUnavailable,
    Json,
    KeyValue,
    Op,
    PutResult,
    RangeResult,
    TxnResult,
    WatchEvent,
    b64,
    decode_answer,
    decode_delete,
    decode_error,
    decode_keepalive,
    decode_range,
    decode_stream_line,
    decode_txn,
    decode_watch_response,
    encode_put,
    encode_watch_create,
    key_range,
    prefix_range_end,
)

HEADER = '"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709",'


def doc(text: str) -> dict[str, object]:
    value = json.loads(text)
    assert isinstance(value, dict)
    return value


# ------------------------------------------------------------------ encoding


@pytest.mark.parametrize(
    ("prefix", "end"),
    [
        (b"/a/", b"/a0"),
        (b"a", b"b"),
        (b"a\xff", b"b"),
        (b"a\xfe\xff\xff", b"a\xff"),
        (b"\xff\xff", b"\x00"),
        (b"", b"\x00"),
    ],
)
def test_prefix_range_end(prefix: bytes, end: bytes) -> None:
    assert prefix_range_end(prefix) == end


def test_key_range_forms() -> None:
    assert key_range(b"/a/b") == {"key": "L2EvYg=="}
    assert key_range("/a/", prefix=True) == {"key": "L2Ev", "range_end": "L2Ew"}
    assert key_range(b"", prefix=True) == {"key": "AA==", "range_end": "AA=="}


def test_put_int64s_are_strings_and_no_lease_is_omitted() -> None:
    assert encode_put(b"/a/b", b"val") == {"key": "L2EvYg==", "value": "dmFs"}
    assert encode_put("/a/b", "val", lease=4111120313212278535)["lease"] == "4111120313212278535"


def test_compare_forms() -> None:
    assert Compare.absent(b"/t/x") == {
        "key": "L3QveA==",
        "target": "VERSION",
        "result": "EQUAL",
        "version": "0",
    }
    assert Compare.mod_revision(b"/t/x", 5)["mod_revision"] == "5"
    assert Compare.mod_revision(b"/t/x", 5, "LESS")["result"] == "LESS"
    assert Compare.value(b"/t/x", b"one") == {
        "key": "L3QveA==",
        "target": "VALUE",
        "result": "EQUAL",
        "value": "b25l",
    }


def test_request_ops() -> None:
    assert Op.put(b"/t/x", b"one") == {"request_put": {"key": "L3QveA==", "value": "b25l"}}
    assert Op.delete(b"/t/", prefix=True) == {
        "request_delete_range": {"key": "L3Qv", "range_end": "L3Qw"}
    }
    assert Op.range(b"/t/x") == {"request_range": {"key": "L3QveA=="}}


def test_watch_create_request() -> None:
    assert encode_watch_create(b"/w/", start_revision=7) == {
        "create_request": {
            "key": "L3cv",
            "range_end": "L3cw",
            "prev_kv": True,
            "start_revision": "7",
        }
    }
    assert "range_end" not in encode_watch_create(b"/w/a", prefix=False)["create_request"]


def test_b64_takes_str_and_bytes() -> None:
    assert b64("/a/b") == b64(b"/a/b") == "L2EvYg=="


# ------------------------------------------------------------------ unary responses


def test_range_with_an_empty_value_omits_the_field() -> None:
    result = decode_range(
        doc(
            "{" + HEADER + '"revision":"3","raft_term":"2"},"kvs":[{"key":"L2EvYg==",'
            '"create_revision":"2","mod_revision":"2","version":"1","value":"dmFs"},'
            '{"key":"L2EvYw==","create_revision":"3","mod_revision":"3","version":"1"}],"count":"2"}'
        )
    )
    assert result == RangeResult(
        [KeyValue(b"/a/b", b"val", 2, 2, 1, 0), KeyValue(b"/a/c", b"", 3, 3, 1, 0)], 3
    )


def test_range_of_nothing_has_no_kvs_field() -> None:
    result = decode_range(doc("{" + HEADER + '"revision":"1","raft_term":"2"}}'))
    assert result == RangeResult([], 1)


def test_delete_counts_and_omits_zero() -> None:
    one = '{"header":{"revision":"4"},"deleted":"1","prev_kvs":[]}'
    assert decode_delete(doc(one)) == DeleteResult(1, 4)
    assert decode_delete(doc('{"header":{"revision":"4","raft_term":"2"}}')) == DeleteResult(0, 4)


def test_txn_success_with_put_and_range() -> None:
    result = decode_txn(
        doc(
            "{" + HEADER + '"revision":"5","raft_term":"2"},"succeeded":true,"responses":['
            '{"response_put":{"header":{"revision":"5"}}},'
            '{"response_range":{"header":{"revision":"5"},"kvs":[{"key":"L3QveA==",'
            '"create_revision":"5","mod_revision":"5","version":"1","value":"b25l"}],"count":"1"}}]}'
        )
    )
    assert result == TxnResult(
        True, 5, [PutResult(5), RangeResult([KeyValue(b"/t/x", b"one", 5, 5, 1, 0)], 5)]
    )


def test_txn_failure_omits_succeeded() -> None:
    result = decode_txn(
        doc(
            "{" + HEADER + '"revision":"6","raft_term":"2"},"responses":'
            '[{"response_delete_range":{"header":{"revision":"6"},"deleted":"1"}}]}'
        )
    )
    assert result == TxnResult(False, 6, [DeleteResult(1, 6)])


# ------------------------------------------------------------------ errors


@pytest.mark.parametrize(
    ("text", "status", "kind", "code"),
    [
        (
            '{"error":"etcdserver: requested lease not found",'
            '"message":"etcdserver: requested lease not found","code":5}',
            404,
            EtcdLeaseNotFound,
            5,
        ),
        (
            '{"error":"etcdserver: mvcc: required revision has been compacted",'
            '"message":"etcdserver: mvcc: required revision has been compacted","code":11}',
            400,
            EtcdCompacted,
            11,
        ),
        (
            '{"error":"etcdserver: mvcc: required revision is a future revision",'
            '"message":"etcdserver: mvcc: required revision is a future revision","code":11}',
            400,
            EtcdError,
            11,
        ),
        (
            '{"error":"etcdserver: invalid auth token",'
            '"message":"etcdserver: invalid auth token","code":16}',
            401,
            EtcdUnauthenticated,
            16,
        ),
        (
            '{"error":"etcdserver: duplicate key given in txn request",'
            '"message":"etcdserver: duplicate key given in txn request","code":3}',
            400,
            EtcdError,
            3,
        ),
        (
            '{"error":{"grpc_code":14,"http_code":503,"message":"transport is closing",'
            '"http_status":"Service Unavailable"}}',
            200,
            EtcdUnavailable,
            14,
        ),
        (
            '{"error":{"grpc_code":1,"http_code":408,'
            '"message":"grpc: the client connection is closing","http_status":"Request Timeout"}}',
            200,
            EtcdUnavailable,
            1,
        ),
    ],
)
def test_error_shapes_map_to_types(
    text: str, status: int, kind: type[EtcdError], code: int
) -> None:
    error = decode_error(doc(text), status)
    assert type(error) is kind
    assert error.code == code
    assert str(error).startswith("etcd: ")


def test_a_bare_502_is_unavailable() -> None:
    assert type(decode_error({}, 502)) is EtcdUnavailable


def test_in_stream_error_line_raises() -> None:
    line = (
        '{"error":{"grpc_code":14,"http_code":503,"message":"transport is closing",'
        '"http_status":"Service Unavailable"}}'
    )
    with pytest.raises(EtcdUnavailable, match="transport is closing"):
        decode_stream_line(line)
    with pytest.raises(EtcdError, match="malformed"):
        decode_stream_line("{nope")


# ------------------------------------------------------------------ keepalive


def test_keepalive_ttl() -> None:
    line = (
        '{"result":{' + HEADER + '"revision":"10","raft_term":"2"},'
        '"ID":"4111120313212278560","TTL":"7"}}'
    )
    assert decode_keepalive(decode_stream_line(line)) == 7


def test_keepalive_of_an_unknown_lease_has_no_ttl() -> None:
    line = '{"result":{' + HEADER + '"revision":"10","raft_term":"2"},"ID":"123"}}'
    with pytest.raises(EtcdLeaseNotFound, match="123"):
        decode_keepalive(decode_stream_line(line))


# ------------------------------------------------------------------ watch

CREATED = '{"result":{' + HEADER + '"revision":"6","raft_term":"2"},"created":true}}'
PUT_FIRST = (
    '{"result":{' + HEADER + '"revision":"7","raft_term":"2"},"events":[{"kv":{"key":"L3cvYQ==",'
    '"create_revision":"7","mod_revision":"7","version":"1","value":"MQ=="}}]}}'
)
PUT_AGAIN = (
    '{"result":{' + HEADER + '"revision":"8","raft_term":"2"},"events":[{"kv":{"key":"L3cvYQ==",'
    '"create_revision":"7","mod_revision":"8","version":"2","value":"Mg=="},"prev_kv":{'
    '"key":"L3cvYQ==","create_revision":"7","mod_revision":"7","version":"1","value":"MQ=="}}]}}'
)
DELETE = (
    '{"result":{' + HEADER + '"revision":"9","raft_term":"2"},"events":[{"type":"DELETE",'
    '"kv":{"key":"L3cvYQ==","mod_revision":"9"},"prev_kv":{"key":"L3cvYQ==",'
    '"create_revision":"7","mod_revision":"8","version":"2","value":"Mg=="}}]}}'
)
TXN_TWO_PUTS = (
    '{"result":{' + HEADER + '"revision":"10","raft_term":"2"},"events":[{"kv":{"key":"L3cvYg==",'
    '"create_revision":"10","mod_revision":"10","version":"1","value":"eA=="}},{"kv":{'
    '"key":"L3cvYw==","create_revision":"10","mod_revision":"10","version":"1","value":"eQ=="}}]}}'
)
COMPACTED = (
    '{"result":{"header":{"cluster_id":"15118495548433857066","member_id":"13668033151171901709",'
    '"raft_term":"2"},"canceled":true,"compact_revision":"2"}}'
)
BAD_TOKEN = (
    '{"result":{' + HEADER + '"revision":"10","raft_term":"4"},"watch_id":"-1","created":true,'
    '"canceled":true,"cancel_reason":"rpc error: code = Unauthenticated desc = etcdserver: '
    'invalid auth token"}}'
)


def watch(line: str) -> list[WatchEvent]:
    return decode_watch_response(decode_stream_line(line)).events


def test_created_response_has_no_events_and_the_current_revision() -> None:
    batch = decode_watch_response(decode_stream_line(CREATED))
    assert batch.events == []
    assert batch.revision == 6


def test_put_event_has_no_type_field() -> None:
    assert watch(PUT_FIRST) == [WatchEvent("PUT", KeyValue(b"/w/a", b"1", 7, 7, 1, 0), None)]


def test_put_event_with_prev_kv() -> None:
    (event,) = watch(PUT_AGAIN)
    assert (event.type, event.kv.value, event.kv.mod_revision) == ("PUT", b"2", 8)
    assert event.prev_kv == KeyValue(b"/w/a", b"1", 7, 7, 1, 0)


def test_delete_event_kv_has_only_key_and_mod_revision() -> None:
    (event,) = watch(DELETE)
    assert event.type == "DELETE"
    assert event.kv == KeyValue(b"/w/a", b"", 0, 9, 0, 0)
    assert event.prev_kv is not None and event.prev_kv.value == b"2"


def test_one_txn_is_one_batch() -> None:
    batch = decode_watch_response(decode_stream_line(TXN_TWO_PUTS))
    assert [(e.kv.key, e.kv.value) for e in batch.events] == [(b"/w/b", b"x"), (b"/w/c", b"y")]
    assert batch.revision == 10


def test_compacted_watch_raises_with_the_compact_revision() -> None:
    with pytest.raises(EtcdCompacted) as caught:
        decode_watch_response(decode_stream_line(COMPACTED))
    assert caught.value.compact_revision == 2


def test_watch_refused_for_a_bad_token() -> None:
    with pytest.raises(EtcdUnauthenticated, match="invalid auth token"):
        decode_watch_response(decode_stream_line(BAD_TOKEN))


@pytest.mark.parametrize(
    "answer",
    [
        {"kvs": [{"key": 5}]},  # not base64 text
        {"kvs": [{"key": "QQ="}]},  # bad base64 padding
        {"kvs": "abc"},
        {"kvs": [None]},
        {"header": {"revision": "soon"}},
        {"header": []},
    ],
)
def test_an_answer_of_the_wrong_shape_is_one_etcd_error_naming_the_call(answer: Json) -> None:
    with pytest.raises(EtcdError, match="unexpected answer to range"):
        decode_answer("range", decode_range, answer)


def test_an_error_answer_with_a_code_that_is_not_a_number_is_still_an_etcd_error() -> None:
    error = decode_error({"error": {"grpc_code": "five", "message": "odd"}}, 500)
    assert type(error) is EtcdError and "odd" in str(error)
