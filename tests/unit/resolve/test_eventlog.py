from __future__ import annotations

import ipaddress

from vxlan_evt.model.events import FdbEvent, L3Miss
from vxlan_evt.resolve.eventlog import LogThrottle, event_key, event_key_of, format_event


def test_a_storm_is_folded_into_one_summary_per_window() -> None:
    throttle = LogThrottle(burst=3, window=10.0)
    key = event_key({"type": "l3miss", "ifname": "vx-42", "ip": "10.42.0.9"})
    other = event_key({"type": "l3miss", "ifname": "vx-42", "ip": "10.42.0.10"})
    admitted = [throttle.admit(key, now=1.0 + i * 0.001)[0] for i in range(1000)]
    assert admitted.count(True) == 3
    assert throttle.admit(other, now=2.0) == (True, [])  # other addresses are not starved
    allowed, summaries = throttle.admit(key, now=12.0)
    assert allowed
    assert summaries == ["event=l3miss ifname=vx-42 subject=10.42.0.9 suppressed=997 window=10s"]


def test_a_scan_over_many_addresses_is_folded_per_device() -> None:
    throttle = LogThrottle(burst=5, device_burst=10, window=10.0)
    keys = [event_key({"type": "l3miss", "ifname": "vx-42", "ip": f"10.42.{i // 256}.{i % 256}"})
            for i in range(500)]  # fmt: skip
    admitted = [throttle.admit(key, now=1.0)[0] for key in keys]
    assert admitted.count(True) == 10
    assert throttle.admit(event_key({"type": "link", "ifname": "vx-42"}), now=2.0)[0]
    _, summaries = throttle.admit(keys[0], now=11.5)
    assert summaries == [
        "event=l3miss ifname=vx-42 suppressed=490 reason=more than 10 lines in 10s on this device "
        "window=10s"
    ]


def test_too_many_distinct_keys_count_as_a_storm_without_growing_memory() -> None:
    throttle = LogThrottle(burst=5, device_burst=1000, window=10.0, max_keys=3)
    keys = [
        event_key({"type": "l3miss", "ifname": "vx-42", "ip": f"10.42.0.{i}"}) for i in range(6)
    ]
    assert [throttle.admit(key, now=1.0)[0] for key in keys] == [True] * 3 + [False] * 3
    assert len(throttle._seen) == 3


def test_key_from_the_event_equals_key_from_its_document() -> None:
    miss = L3Miss(7, "vx-42", 42, ipaddress.ip_address("10.42.0.9"))
    fdb = FdbEvent("add", 7, "vx-42", 42, "02:42:0a:2a:00:02")
    for event in (miss, fdb):
        assert event_key_of(event) == event_key(event.to_dict())


def test_format_event_is_key_value_and_short() -> None:
    line = format_event(
        {
            "type": "fdb",
            "seq": 4,
            "timestamp": 1.0,
            "action": "add",
            "ifname": "vx-42",
            "mac": "02:42:0a:2a:00:02",
            "dst": None,
            "flags": ["self"],
            "network_id": "a" * 64,
        }
    )
    assert line == (
        "event=fdb action=add ifname=vx-42 mac=02:42:0a:2a:00:02 flags=self network_id=aaaaaaaaaaaa"
    )
