from __future__ import annotations

from vxlan_evt.eventlog import LogThrottle, event_key, format_event


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
