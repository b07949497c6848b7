"""Fan-out of events to history and live subscribers, never blocking the producer.

The listener must keep draining its netlink socket during a miss storm, so
publishing is synchronous and bounded: history is a ring buffer, and each
subscriber has a bounded channel; a subscriber that falls behind loses events
(counted, and told how many) instead of slowing everyone down.
"""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import trio

E = TypeVar("E")


@dataclass(frozen=True, slots=True)
class Published(Generic[E]):
    """An event with the bus's sequence number (for `since=` resumption)."""

    seq: int
    event: E


@dataclass(slots=True)
class Subscription(Generic[E]):
    receive: trio.MemoryReceiveChannel[Published[E]]
    predicate: Callable[[E], bool] | None
    dropped: int = 0

    def __aiter__(self) -> AsyncIterator[Published[E]]:
        return self.receive.__aiter__()


@dataclass(slots=True)
class BusStatistics:
    published: int = 0
    subscribers: int = 0
    dropped: int = 0
    history: int = 0
    by_type: dict[str, int] = field(default_factory=dict)


class EventBus(Generic[E]):
    def __init__(self, *, history: int = 10_000, subscriber_buffer: int = 1_000) -> None:
        self._history: deque[Published[E]] = deque(maxlen=history)
        self._subscribers: dict[
            int, tuple[Subscription[E], trio.MemorySendChannel[Published[E]]]
        ] = {}
        self._ids = itertools.count()
        self._seq = itertools.count(1)
        self._buffer = subscriber_buffer
        self._stats = BusStatistics()

    def publish(self, event: E) -> Published[E]:
        published = Published(next(self._seq), event)
        self._history.append(published)
        self._stats.published += 1
        kind = str(getattr(event, "type", type(event).__name__))
        self._stats.by_type[kind] = self._stats.by_type.get(kind, 0) + 1
        for subscription, send in self._subscribers.values():
            if subscription.predicate is not None and not subscription.predicate(event):
                continue
            try:
                send.send_nowait(published)
            except trio.WouldBlock:
                subscription.dropped += 1
                self._stats.dropped += 1
        return published

    def history(
        self,
        *,
        since: int = 0,
        predicate: Callable[[E], bool] | None = None,
        limit: int | None = None,
    ) -> list[Published[E]]:
        """Events with seq > `since`, oldest first; the last `limit` of them if given."""
        selected = [
            p for p in self._history if p.seq > since and (predicate is None or predicate(p.event))
        ]
        return selected[-limit:] if limit is not None else selected

    @asynccontextmanager
    async def subscribe(
        self, predicate: Callable[[E], bool] | None = None
    ) -> AsyncIterator[Subscription[E]]:
        send, receive = trio.open_memory_channel[Published[E]](self._buffer)
        subscription = Subscription(receive, predicate)
        key = next(self._ids)
        self._subscribers[key] = (subscription, send)
        try:
            yield subscription
        finally:
            del self._subscribers[key]
            send.close()
            receive.close()

    def statistics(self) -> BusStatistics:
        return BusStatistics(
            published=self._stats.published,
            subscribers=len(self._subscribers),
            dropped=self._stats.dropped,
            history=len(self._history),
            by_type=dict(self._stats.by_type),
        )
