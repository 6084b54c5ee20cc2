"""The store's one writer: a dedicated thread that owns the DuckDB connection for a whole scan.

The crawl is a one-way pipeline: its asyncio loop does I/O and hands rows on; it never touches the
database itself. Every Store call of a scan (opening it, the scan row, the crawl's reads and batch
writes, the suppressions pass, the counts, closing it) runs on this one thread, in the order it was
asked for. One thread, first in first out, means:
- the event loop never blocks on SQL (a batch insert is ~10 ms; a loop stalled that long starves
  the HTTP slots);
- a read asked after a write sees that write, exactly as when the calls ran inline;
- DuckDB's connection is used by one thread only, so no call interleaves with another.

Writes of finished batches are queued without waiting (`write`), bounded: past `MAX_PENDING` queued
calls, `write` waits for the oldest (back-pressure, so memory stays flat when the disk is slow).
A failed write is never swallowed: it poisons the writer, so no later queued write runs after it (a
watermark can never commit past a lost batch), and it is raised from the crawl's next `run`, `write`
or `drain`. The crawl ends by draining: every queued write is stored, or its failure raised. Each
batch is still one transaction, so a crash (SIGKILL) loses whole batches (the one being filled and
at most `MAX_PENDING` queued ones), never half of one; a resume reads those runs again.

Callables get the Store as their first argument: `await db.run(Store.watermark, env, flow)`; the
crawl holds the writer, never the Store, so it cannot reach the connection by accident.
"""
from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, Callable, TypeVar

from scanner.store.database import Store

log = logging.getLogger("flowleaks.writer")

T = TypeVar("T")
MAX_PENDING = 1  # queued writes before `write` waits: one, so SQL overlaps I/O and a crash loses little
THREAD_NAME = "flowleaks-writer"


class WriterFailed(RuntimeError):
    """A queued write did not run because an earlier one failed (that failure is the cause)."""


class StoreWriter:
    """The thread that opens, uses and closes one Store. Create with `StoreWriter.open(path)`."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=THREAD_NAME)
        self._store: Store | None = None
        self._pending: deque[Future] = deque()  # queued writes, oldest first (loop thread only)
        self._failed: BaseException | None = None  # the first failed queued write (set on the writer thread)
        self.thread_id: int | None = None  # the writer thread's ident, once it ran something

    @classmethod
    def open(cls, path: str, **kw: Any) -> "StoreWriter":
        """A writer whose thread opens the Store at `path` (errors raised here, as Store raises them)."""
        writer = cls()
        try:
            writer._store = writer._pool.submit(writer._open, path, kw).result()
        except BaseException:
            writer._pool.shutdown(wait=True)
            raise
        return writer

    def _open(self, path: str, kw: dict) -> Store:
        self.thread_id = threading.get_ident()
        return Store(path, **kw)

    # -- calls ----------------------------------------------------------------------------------

    def _job(self, fn: Callable[..., T], args: tuple, kw: dict, queued: bool) -> Callable[[], T]:
        def job() -> T:
            if queued and self._failed is not None:
                raise WriterFailed("not written: an earlier write failed") from self._failed
            try:
                return fn(self._store, *args, **kw)
            except BaseException as exc:
                if queued and self._failed is None:
                    self._failed = exc
                raise
        return job

    def call(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Run `fn(store, *args)` on the writer thread and wait (outside the event loop: run_scan).
        Not refused after a failed write: the scan row must still be marked failed."""
        return self._pool.submit(self._job(fn, args, kw, queued=False)).result()

    async def run(self, fn: Callable[..., T], *args: Any, **kw: Any) -> T:
        """Await `fn(store, *args)` on the writer thread (a read, or a write whose answer is needed).
        It runs after every write queued before it, so it sees them."""
        self.raise_failure()
        self._reap()
        return await _bridge(self._pool.submit(self._job(fn, args, kw, queued=False)))

    async def write(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Queue `fn(store, *args)` without waiting for it; wait only while more than MAX_PENDING
        writes are queued. Raises the failure of an earlier queued write."""
        self.enqueue(fn, *args, **kw)
        while len(self._pending) > MAX_PENDING:
            oldest = self._pending[0]
            try:
                await _bridge(oldest)
            finally:
                if self._pending and self._pending[0] is oldest:
                    self._pending.popleft()
        self.raise_failure()

    def enqueue(self, fn: Callable[..., Any], *args: Any, **kw: Any) -> None:
        """Queue a write from synchronous code (no back-pressure: for one-off writes only)."""
        self.raise_failure()
        self._reap()
        self._pending.append(self._pool.submit(self._job(fn, args, kw, queued=True)))

    async def drain(self) -> BaseException | None:
        """Wait for every queued write. Returns the first failure (None when all were stored); the
        caller raises it (Crawl.run), or, when the crawl already failed, reports it beside that."""
        while self._pending:
            oldest = self._pending[0]
            try:
                await _bridge(oldest)
            except Exception:  # noqa: BLE001 - recorded in self._failed, returned below
                pass
            finally:
                if self._pending and self._pending[0] is oldest:
                    self._pending.popleft()
        return self._failed

    def raise_failure(self) -> None:
        if self._failed is not None:
            raise self._failed

    def _reap(self) -> None:
        """Forget finished writes at the head of the queue (their failure, if any, is in _failed)."""
        while self._pending and self._pending[0].done():
            self._pending.popleft()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def close(self) -> None:
        """Close the Store on its thread, after every queued call, then stop the thread."""
        try:
            if self._store is not None:
                self._pool.submit(self._store.close).result()
        finally:
            self._store = None
            self._pool.shutdown(wait=True)


def _bridge(cf: Future) -> asyncio.Future:
    """An awaitable for a writer future. Unlike asyncio.wrap_future, cancelling the awaiter (Ctrl-C,
    a failed sibling task) never cancels the queued call: a batch dropped from the middle of the queue
    while later ones commit would let a watermark pass runs that were never stored."""
    loop = asyncio.get_running_loop()
    af = loop.create_future()

    def settle(f: Future) -> None:
        if af.done():
            return
        exc = f.exception()
        if exc is not None:
            af.set_exception(exc)
        else:
            af.set_result(f.result())

    def done(f: Future) -> None:
        try:
            loop.call_soon_threadsafe(settle, f)
        except RuntimeError:  # the loop is closed: nobody awaits this any more
            pass

    cf.add_done_callback(done)
    return af
