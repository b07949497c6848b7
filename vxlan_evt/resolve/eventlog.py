"""One log line per event, without letting a miss storm flood the log.

The kernel sends one notification per dropped frame, so a single busy flow
can produce thousands of identical misses a second, and a scan produces
thousands of *different* ones. `LogThrottle` lets the first `burst` events of
each key (type, interface, address) through per window, and at most
`device_burst` lines per (type, interface) over all addresses; the rest are
folded into one "suppressed N" line per key, or per device for a storm, when
the window ends. Pure: the caller passes the time.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


def event_key(document: Mapping[str, Any]) -> tuple[Any, ...]:
    """Events that look alike to an operator share a key."""
    return (
        document.get("type"),
        document.get("ifname"),
        document.get("ip") or document.get("mac"),
        document.get("action"),
    )


def event_key_of(event: Any) -> tuple[Any, ...]:
    """`event_key` read from the event's attributes: no dict built for a suppressed event."""
    address = getattr(event, "ip", None) or getattr(event, "mac", None)
    return (
        event.type,
        getattr(event, "ifname", None),
        str(address) if address is not None else None,
        getattr(event, "action", None),
    )


def format_event(document: Mapping[str, Any]) -> str:
    """key=value, skipping empty fields and the bookkeeping ones."""
    skip = {"type", "timestamp", "seq"}
    parts = [f"event={document.get('type')}"]
    for key, value in document.items():
        if key in skip or value is None or value == () or value == []:
            continue
        if key == "network_id" or key == "endpoint_id":
            value = str(value)[:12]
        if isinstance(value, list):
            value = ",".join(map(str, value))
        parts.append(f"{key}={value}")
    return " ".join(parts)


@dataclass
class LogThrottle:
    burst: int = 5
    device_burst: int = 100
    window: float = 10.0
    max_keys: int = 50_000  # memory bound within one window; beyond it, a device storm
    _window_start: float = 0.0
    _seen: dict[tuple[Any, ...], int] = field(default_factory=dict)
    _lines: dict[tuple[Any, ...], int] = field(default_factory=dict)
    _storm: dict[tuple[Any, ...], int] = field(default_factory=dict)

    def admit(self, key: tuple[Any, ...], now: float) -> tuple[bool, list[str]]:
        """(log this event?, summary lines of the window that just closed)."""
        summaries = self.flush(now) if now - self._window_start >= self.window else []
        count = self._seen.get(key, 0) + 1
        if count > 1 or len(self._seen) < self.max_keys:
            self._seen[key] = count
        if count > self.burst:
            return False, summaries
        device = key[:2]
        lines = self._lines[device] = self._lines.get(device, 0) + 1
        if lines > self.device_burst or key not in self._seen:
            self._storm[device] = self._storm.get(device, 0) + 1
            return False, summaries
        return True, summaries

    def flush(self, now: float) -> list[str]:
        summaries = [
            f"event={key[0]} ifname={key[1]} subject={key[2]} suppressed={count - self.burst} "
            f"window={self.window:g}s"
            for key, count in self._seen.items()
            if count > self.burst
        ]
        summaries += [
            f"event={device[0]} ifname={device[1]} suppressed={count} "
            f"reason=more than {self.device_burst} lines in {self.window:g}s on this device "
            f"window={self.window:g}s"
            for device, count in self._storm.items()
        ]
        self._seen.clear()
        self._lines.clear()
        self._storm.clear()
        self._window_start = now
        return summaries
