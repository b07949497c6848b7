from __future__ import annotations

from dataclasses import dataclass

from vxlan_evt.resolve.bus import EventBus


@dataclass(frozen=True)
class Ev:
    type: str
    n: int


def test_history_is_a_bounded_ring_with_since_and_filters() -> None:
    bus: EventBus[Ev] = EventBus(history=3)
    for n in range(5):
        bus.publish(Ev("link" if n % 2 else "l3miss", n))
    assert [p.event.n for p in bus.history()] == [2, 3, 4]
    assert [p.seq for p in bus.history(since=4)] == [5]
    assert [p.event.n for p in bus.history(predicate=lambda e: e.type == "l3miss")] == [2, 4]
    assert [p.event.n for p in bus.history(limit=1)] == [4]
    stats = bus.statistics()
    assert (stats.published, stats.history, stats.by_type) == (5, 3, {"l3miss": 3, "link": 2})


async def test_subscribers_get_live_events_and_slow_ones_drop() -> None:
    bus: EventBus[Ev] = EventBus(subscriber_buffer=2)
    async with bus.subscribe() as fast, bus.subscribe(lambda e: e.type == "link") as links:
        for n in range(4):
            bus.publish(Ev("link", n))
        got = [(await fast.receive.receive()).event.n for _ in range(2)]
        assert got == [0, 1]
        assert fast.dropped == 2 and links.dropped == 2
        assert bus.statistics().subscribers == 2
    assert bus.statistics().subscribers == 0
    assert bus.statistics().dropped == 4


async def test_a_full_subscriber_loses_events_instead_of_holding_the_producer() -> None:
    bus: EventBus[Ev] = EventBus(subscriber_buffer=1)
    async with bus.subscribe():
        for n in range(10_000):
            bus.publish(Ev("l2miss", n))  # synchronous: it cannot wait for a reader
    assert bus.statistics().dropped == 9_999
