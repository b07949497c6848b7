"""The one task that owns the kernel's write side.

pyroute2's synchronous `IPRoute` is the well-kept encoder we want for link changes
(and the few reads still decoded by it: routes, entry ages, the observe API's links),
but it blocks; FDB and neighbour entries go through `EntryWriter`, which
batches them on a socket of its own. A single task owns both and runs each
submitted job in a worker thread (`trio.to_thread.run_sync`, one at a time):
writes are serialised, never interleaved, and no other task blocks the event loop.
A small entry write for a waiting container may be `inline`: it runs in the owner
task itself. That saves the hop to a thread and back (~1-2 ms off each on-demand
first packet, measured with tools/bench/bench_first_ping.py) at a price: while the
kernel's rtnl lock is held by someone else (dockerd, a namespace teardown), the
event loop waits too. Callers bound that with a short timeout on the write.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import outcome
import trio
from pyroute2 import IPRoute

from vxlan_evt.kernel.entries import EntryWriter

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Netlink:
    """What a job gets: pyroute2's IPRoute (link changes) and the batched entry writer."""

    route: Any
    entries: EntryWriter


Job = Callable[[Netlink], Any]


@dataclass(slots=True)
class WorkerStatistics:
    jobs: int = 0
    failures: int = 0
    busy_seconds: float = 0.0


@dataclass(slots=True)
class _Request:
    job: Job
    reply: trio.MemorySendChannel[outcome.Outcome[Any]]
    inline: bool = False


class NetlinkWorker:
    """Submit jobs with `await worker.call(fn)`; `fn(netlink)` runs on the owned sockets."""

    def __init__(self, *, queue_size: int = 256) -> None:
        self._send, self._receive = trio.open_memory_channel[_Request](queue_size)
        self._stats = WorkerStatistics()

    def statistics(self) -> WorkerStatistics:
        return WorkerStatistics(**{k: getattr(self._stats, k) for k in self._stats.__slots__})

    async def call(self, job: Callable[[Netlink], T], *, inline: bool = False) -> T:
        """Run `job(netlink)` in the owner task's thread (`inline`: in the owner task, for a
        job of well under a millisecond) and return (or raise) its outcome."""
        reply_send, reply_receive = trio.open_memory_channel[outcome.Outcome[Any]](1)
        await self._send.send(_Request(job, reply_send, inline))
        async with reply_receive:
            result: outcome.Outcome[T] = await reply_receive.receive()
        return result.unwrap()

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        limiter = trio.CapacityLimiter(1)
        netlink = await trio.to_thread.run_sync(_open, limiter=limiter)
        try:
            task_status.started()
            async with self._receive:
                async for request in self._receive:
                    started = time.monotonic()
                    if request.inline:
                        result = outcome.capture(request.job, netlink)
                        await trio.lowlevel.checkpoint()
                    else:
                        result = await trio.to_thread.run_sync(
                            outcome.capture, request.job, netlink, limiter=limiter
                        )
                    self._stats.jobs += 1
                    self._stats.busy_seconds += time.monotonic() - started
                    if isinstance(result, outcome.Error):
                        self._stats.failures += 1
                    # A cancelled caller has closed its end; the work is done anyway.
                    with request.reply, contextlib.suppress(trio.BrokenResourceError):
                        request.reply.send_nowait(result)
        finally:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(_close, netlink, limiter=limiter)


def _open() -> Netlink:
    route = IPRoute()
    try:
        # pyroute2 does one-time work (~40 ms, holding the GIL: every task waits) the first
        # time it decodes link messages of the kinds on this host; one link (lo) is not
        # enough. A full decode here, before the daemon serves, keeps that out of the first
        # miss burst (bench_miss_latency.py --quick, p99 at 50/s: ~35 ms without it, ~3 ms
        # with it). It costs ~0.7 ms per link (bench_link_dump.py), once, at start.
        route.get_links()
        return Netlink(route, EntryWriter())
    except BaseException:
        route.close()
        raise


def _close(netlink: Netlink) -> None:
    netlink.entries.close()
    netlink.route.close()
