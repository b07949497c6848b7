"""One log line per event, without letting a miss storm flood the log.

The kernel sends one notification per dropped frame, so a single busy flow
can produce thousands of identical misses a second. `LogThrottle` lets the
first `burst` events of each key (type, interface, address) through per
window and folds the rest into one "suppressed N" line when the window ends.
Pure: the caller passes the time.
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
    window: float = 10.0
    _window_start: float = 0.0
    _seen: dict[tuple[Any, ...], int] = field(default_factory=dict)

    def admit(self, key: tuple[Any, ...], now: float) -> tuple[bool, list[str]]:
        """(log this event?, summary lines of the window that just closed)."""
        summaries = self.flush(now) if now - self._window_start >= self.window else []
        count = self._seen.get(key, 0) + 1
        self._seen[key] = count
        return count <= self.burst, summaries

    def flush(self, now: float) -> list[str]:
        summaries = [
            f"event={key[0]} ifname={key[1]} subject={key[2]} suppressed={count - self.burst} "
            f"window={self.window:g}s"
            for key, count in self._seen.items()
            if count > self.burst
        ]
        self._seen.clear()
        self._window_start = now
        return summaries
