"""How the crawl's stages are joined: bounded queues that their producers close, worker pools that
drain them, and `together`, which runs stages side by side and stops them all at the first failure.

Bounded everywhere: a stage that falls behind makes the one before it wait, so memory stays flat
however large the tenant is. A failure in any stage is the crawl's failure, raised as itself (not
wrapped in a group): the CLI's error mapping and exit codes see the same exceptions as before.
"""
from __future__ import annotations

import asyncio
from typing import Any, Awaitable, Callable, Generic, TypeVar

T = TypeVar("T")
_CLOSED: Any = object()


class Closable(Generic[T]):
    """A bounded queue with an end: `put` waits while `maxsize` items are waiting; `get` returns None
    once every producer has closed it and the items are taken. Closing never waits (it may run in a
    `finally` while the crawl is being cancelled, with nobody left to take items)."""

    def __init__(self, maxsize: int, producers: int = 1):
        self._queue: asyncio.Queue = asyncio.Queue()  # the end marker always fits; items are bounded by:
        self._room = asyncio.Semaphore(maxsize)
        self._producers = producers

    async def put(self, item: T) -> None:
        await self._room.acquire()
        self._queue.put_nowait(item)

    def close(self) -> None:
        self._producers -= 1
        if self._producers == 0:
            self._queue.put_nowait(_CLOSED)

    async def get(self) -> T | None:
        item = await self._queue.get()
        if item is _CLOSED:
            self._queue.put_nowait(_CLOSED)  # for the next consumer
            return None
        self._room.release()
        return item


async def drain(queue: Closable[T], workers: int, handle: Callable[[T], Awaitable[Any]]) -> None:
    """`workers` tasks take items from `queue` and `handle` each, until the queue is closed."""
    async def worker() -> None:
        while (item := await queue.get()) is not None:
            await handle(item)

    await together(*(worker() for _ in range(workers)))


async def together(*aws: Awaitable[Any]) -> list[Any]:
    """Run `aws` side by side and return their results in order; at the first failure cancel the
    rest and raise that failure itself."""
    tasks = [asyncio.ensure_future(a) for a in aws]
    if not tasks:
        return []
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_EXCEPTION)
        for task in tasks:  # in order: the first stage's failure wins over one it caused downstream
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()
        return [task.result() for task in tasks]
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
