"""PeerSync's wake-up: asked before it runs, by many at once, or not at all."""

from __future__ import annotations

import trio
import trio.testing

from vxlan_evt.resolve.peersync import PeerSyncRequest


async def test_an_ask_before_anyone_waits_is_kept() -> None:
    """The backends are built (and may ask) before PeerSync runs."""
    request = PeerSyncRequest()
    request.set()
    with trio.fail_after(1):
        await request.wait()


async def test_asks_until_the_wait_ends_count_as_one() -> None:
    request = PeerSyncRequest()
    request.set()
    request.set()
    await request.wait()
    with trio.move_on_after(0.01) as waiting:
        await request.wait()
    assert waiting.cancelled_caught  # re-armed: nobody asked since


async def test_a_waiter_wakes_when_asked() -> None:
    request = PeerSyncRequest()
    woken: list[None] = []

    async def waiter() -> None:
        await request.wait()
        woken.append(None)

    async with trio.open_nursery() as nursery:
        nursery.start_soon(waiter)
        await trio.testing.wait_all_tasks_blocked()
        assert woken == []
        request.set()
    assert woken == [None]


async def test_forget_drops_the_asks_made_so_far() -> None:
    request = PeerSyncRequest()
    request.set()
    request.forget()
    with trio.move_on_after(0.05) as waited:
        await request.wait()
    assert waited.cancelled_caught, "a forgotten ask must not wake the next wait"
    request.set()
    with trio.fail_after(1):
        await request.wait()
