"""A stand-in for the netlink worker's sockets, for unit tests of what gets written."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from vxlan_evt.model.entries import Entry


class RecordingEntries:
    """Records applied calls as ("write"|"delete", entry); can refuse writes or deletes."""

    def __init__(self, *, refuse_writes: str | None = None, refuse_deletes: str | None = None):
        self.calls: list[tuple[str, Entry]] = []
        self.refuse = {"write": refuse_writes, "delete": refuse_deletes}

    def write(
        self, entries: Sequence[Entry], *, timeout: float | None = None
    ) -> list[tuple[Entry, str]]:
        return self._record("write", entries)

    def delete(self, entries: Sequence[Entry]) -> list[tuple[Entry, str]]:
        return self._record("delete", entries)

    def _record(self, kind: str, entries: Sequence[Entry]) -> list[tuple[Entry, str]]:
        reason = self.refuse[kind]
        if reason is not None:
            return [(entry, reason) for entry in entries]
        self.calls.extend((kind, entry) for entry in entries)
        return []


class FakeNetlink:
    """`Netlink` for tests: any object as `route`, a `RecordingEntries` as `entries`."""

    def __init__(self, route: Any = None, entries: RecordingEntries | None = None) -> None:
        self.route = route
        self.entries = entries if entries is not None else RecordingEntries()


class FakeWorker:
    """Runs each job at once on a `FakeNetlink`, counting the jobs."""

    def __init__(self, netlink: FakeNetlink | None = None) -> None:
        self.netlink = netlink if netlink is not None else FakeNetlink()
        self.jobs = 0

    async def call(self, job: Callable[[Any], Any], *, inline: bool = False) -> Any:
        self.jobs += 1
        return job(self.netlink)
