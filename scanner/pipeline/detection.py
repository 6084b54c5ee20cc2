"""The detect stage (`Detector`): content bodies in, redacted results out. Only fingerprints,
previews, lengths, JSON paths and rules leave `detect_body`; a secret never does. Detection is
CPU-bound: it runs on one in-process thread (the event loop stays free for I/O) and, in a crawl big
enough to be worth it, in `jobs` worker processes (scanner/pipeline/worker_engine.py), which get
bodies in batches and build their engines from the known-value set as keyed hashes, never secrets.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections import deque
from concurrent.futures import Future, ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from functools import partial
from typing import Any, Callable, TypeVar

from detectors.base import Drop, Skip, fingerprint, preview
from detectors.source_outputs import source_output_hits

from scanner.errors import ExpectedError, describe
from scanner.pipeline.worker_engine import WorkerFailure, detect_batch_in_worker, start_detect_pool
from scanner.posture.explain import literal_path

log = logging.getLogger("flowleaks.detect")
T = TypeVar("T")

# Bodies travel in batches of up to this many bodies or bytes (a bigger body travels alone): one IPC
# round trip per body cost more than detecting a body of a few KB (43 runs/s with 2 workers, 61 with
# the one thread).
BATCH_BODIES = 64
BATCH_BYTES = 512 * 1024
# Batches in flight per worker at most (one detected, one queued so it never idles); beyond that
# `detect` waits, so memory stays bounded. The same for the in-process thread.
IN_FLIGHT_PER_WORKER = 2
# When the pool starts, in units of detection work: a body counts 1, plus 1 per WORK_BYTES of it (the
# thread measured ~0.25 ms a body + ~0.09 ms a KB: 0.3 ms for the fake tenant's 0.5 KB bodies, 0.6 ms
# for 4 KB ones). A worker costs ~0.67 s of CPU to start (a spawned interpreter imports the detectors
# and builds its engine; the first is up 0.6-1.1 s after the ask), so the pool starts once the thread
# has detected about that much itself (2000 units: ~0.5-0.7 s; rent until the rent paid equals the
# price): a crawl that small was not worth a pool, one that big likely goes on. The test suite's
# sweeps (at most ~1500 small bodies) never start one.
POOL_AFTER = 2000
WORK_BYTES = 3000


class DetectorFailed(ExpectedError):
    """A detection worker died (killed, or out of memory): the scan stops incomplete. The message
    names no body and no secret."""


@dataclass(frozen=True, slots=True)
class RedactedHit:
    """A detector hit with the secret replaced by what may be kept: fingerprint, preview, length."""

    json_path: str
    rule_id: str
    detector: str
    fingerprint: str
    preview: str
    length: int
    known_secret: str | None
    confidence: str
    decoding: str

    @classmethod
    def of(cls, hit: Any, key: bytes, json_path: str | None = None) -> "RedactedHit":
        """The one place a detector hit's secret ends: only its keyed fingerprint, preview and
        length go on (`json_path` overrides the hit's, e.g. prefixed with a file's line)."""
        return cls(hit.json_path if json_path is None else json_path, hit.rule_id, hit.detector,
                   fingerprint(key, hit.secret), preview(hit.secret), len(hit.secret), hit.known_secret,
                   hit.confidence, hit.decoding)


@dataclass(frozen=True, slots=True)
class ContentResult:
    """What scanning one content body produced; safe to cache and to persist (no secret in it)."""

    hits: tuple[RedactedHit, ...] = ()
    skipped: tuple[Skip, ...] = ()
    dropped: tuple[Drop, ...] = ()

    # Serialised by field name, never by position: a field added or reordered later cannot shift
    # a cached fingerprint into the preview column.
    def to_json(self) -> str:
        return json.dumps({"hits": [{f: getattr(h, f) for f in RedactedHit.__slots__} for h in self.hits],
                           "skipped": [{"json_path": k.json_path, "reason": k.reason, "detail": k.detail}
                                       for k in self.skipped],
                           "dropped": [{"rule_id": d.rule_id, "filter": d.filter, "json_path": d.json_path}
                                       for d in self.dropped]})

    @classmethod
    def from_json(cls, text: str) -> "ContentResult":
        d = json.loads(text)
        return cls(tuple(RedactedHit(**h) for h in d["hits"]), tuple(Skip(**k) for k in d["skipped"]),
                   tuple(Drop(**x) for x in d["dropped"]))


@dataclass(slots=True)
class _Item:
    """A body waiting for its result: what is sent, its size, and its awaiter's future."""

    args: tuple
    size: int
    fut: asyncio.Future


class Detector:
    """The detect stage: content bodies in, redacted results out (fingerprint, preview, length, JSON
    path, rule) — never values.

    `detect` queues a body; bodies queued in one turn of the event loop (up to BATCH_BODIES /
    BATCH_BYTES) go together to the in-process detector thread or, once the pool is up, to a worker
    process. `jobs == 1`, or a `secret_sink` (`record` scrubs each secret: it must see them), keeps
    everything on the thread. Otherwise the pool of `jobs` workers starts in the background after
    `pool_after` units of work (None: POOL_AFTER; 0: at `start()`), and the thread takes batches
    until the first worker is up; from then on batches go to the workers only.
    """

    def __init__(self, engine: Any, key: bytes, jobs: int, secret_sink: Callable[[str], Any] | None = None,
                 pool_after: int | None = None):
        self.engine, self.key, self.jobs, self.secret_sink = engine, key, max(1, jobs), secret_sink
        self.pooled = self.jobs > 1 and secret_sink is None  # may the pool start at all
        self.pool_after = POOL_AFTER if pool_after is None else pool_after
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detect")
        self._loop: asyncio.AbstractEventLoop | None = None
        self._started = False
        self._closed = False
        self._close_task: asyncio.Future | None = None
        self._failed: str | None = None            # why the stage cannot go on (a safe message)
        self._pool: ProcessPoolExecutor | None = None
        self._pool_state = "off"                   # off | starting | up
        self._pool_asked = 0.0                     # monotonic time the pool was asked to start
        self._spawned = threading.Event()          # clear while the pool is being spawned (a thread)
        self._spawned.set()
        self._settled = asyncio.Event()            # set when the pool is up, failed or closed
        self._pending: deque[_Item] = deque()
        self._pending_bytes = 0
        self._flush: asyncio.Handle | None = None
        self._room: list[asyncio.Future] = []      # detect() calls waiting for room in the queue
        self._in_flight = {"here": 0, "pool": 0}   # batches
        self._bodies_in_flight = 0
        # what a caller, a test or a progress line may read (counts only)
        self.bodies = 0                            # bodies handed to detect()
        self.work = 0                              # their units of work (POOL_AFTER)
        self.batches_sent = 0                      # batches sent to worker processes
        self.batches_here = 0                      # batches detected on the in-process thread
        self.peak_in_flight = 0                    # most batches in flight to the workers at once
        self.worker_pids: set[int] = set()         # workers that reported ready
        self.pool_startup_s: float | None = None   # from asking for the pool to its first worker up

    # -- the interface -------------------------------------------------------------------------------
    def start(self) -> None:
        """Call once, after the Key Vaults loaded (`engine.known` is complete then: the workers get
        it as it is at the pool's start). Starts the pool at once when `pool_after` is 0."""
        self._started = True
        with contextlib.suppress(RuntimeError):  # no running loop: the first detect() decides
            self._bind()
            self._maybe_start_pool()

    async def detect(self, body: bytes, side: str, source: str | None, strings: list
                     ) -> tuple[ContentResult, list]:
        """`detect_body` of one body: (ContentResult, one literal path or None per hit). A body's own
        exception is raised here (from a worker: its type without its text); DetectorFailed when a
        worker died."""
        loop = self._bind()
        self._check()
        while self._full():  # backpressure: the lanes are full and so is the next batch
            waiter = loop.create_future()
            self._room.append(waiter)
            try:
                await waiter
            finally:
                if waiter in self._room:
                    self._room.remove(waiter)
            self._check()
        item = _Item((body, side, source, strings), len(body), loop.create_future())
        self._pending.append(item)
        self._pending_bytes += item.size
        self.bodies += 1
        self.work += 1 + item.size // WORK_BYTES
        self._maybe_start_pool()
        if self._full():
            self._dispatch(any_size=False)
        elif self._flush is None:  # what else this turn of the loop queues goes in the same batch
            self._flush = loop.call_soon(self._flush_now)
        return await item.fut

    async def run_here(self, fn: Callable[..., T], *args) -> T:
        """A CPU-bound callable on the in-process detector thread (posture analysis uses it)."""
        return await asyncio.get_running_loop().run_in_executor(self._thread, fn, *args)

    async def aclose(self) -> None:
        """Stop the pool and the thread: what is queued is cancelled, batches already running finish,
        the worker processes are waited for. Safe to call twice, and after a failure."""
        if self._close_task is None:
            self._stop_queued()
            self._close_task = asyncio.ensure_future(asyncio.get_running_loop().run_in_executor(
                None, self._shutdown_blocking))
        await asyncio.shield(self._close_task)

    async def pool_up(self) -> bool:
        """Wait until the pool is up (True) or cannot be (it failed, the detector closed, or it was
        never asked to start: False)."""
        if self._pool_state == "starting":
            await self._settled.wait()
        return self._pool_state == "up" and self._failed is None and not self._closed

    @property
    def pool_started(self) -> bool:
        return self._pool_state != "off"

    @property
    def queued(self) -> int:
        """Bodies handed to detect() and not detected yet (queued or in flight): at most
        (IN_FLIGHT_PER_WORKER * workers + 1) batches, however many callers wait."""
        return len(self._pending) + self._bodies_in_flight

    # -- in process ----------------------------------------------------------------------------------
    def _detect_here(self, body: bytes, side: str, source: str | None, strings: list) -> tuple[ContentResult, list]:
        """One body on the in-process detector thread (tests/hardening/helpers.py INJECT patches it)."""
        return detect_body(self.engine, self.key, body, side, source, strings, self.secret_sink)

    def _detect_batch_here(self, items: list[tuple]) -> list:
        """Runs on the detector thread: each body's result, or its exception (the others go on)."""
        out: list = []
        for args in items:
            try:
                out.append(self._detect_here(*args))
            except Exception as exc:  # noqa: BLE001 - raised at that body's awaiter, in this process
                out.append(exc)
        return out

    # -- batching ------------------------------------------------------------------------------------
    def _bind(self) -> asyncio.AbstractEventLoop:
        loop = asyncio.get_running_loop()
        self._loop = self._loop or loop
        return loop

    def _check(self) -> None:
        if self._failed is not None:
            raise DetectorFailed(self._failed)
        if self._closed:
            raise RuntimeError("the detector is closed")

    def _full(self) -> bool:
        return len(self._pending) >= BATCH_BODIES or self._pending_bytes >= BATCH_BYTES

    def _wake(self) -> None:
        for waiter in self._room:  # each checks again whether there is room
            if not waiter.done():
                waiter.set_result(None)

    def _flush_now(self) -> None:
        self._flush = None
        self._dispatch(any_size=True)

    def _lane(self) -> str | None:
        """Where the next batch may go now: the pool once it is up, else the thread; None when full."""
        if self._pool_state == "up":
            return "pool" if self._in_flight["pool"] < IN_FLIGHT_PER_WORKER * self.jobs else None
        return "here" if self._in_flight["here"] < IN_FLIGHT_PER_WORKER else None

    def _dispatch(self, any_size: bool) -> None:
        """Send what is queued while a lane has room: full batches only, or (`any_size`) any."""
        while self._pending and (any_size or self._full()) and not self._closed and self._failed is None:
            lane = self._lane()
            if lane is None:
                break
            batch = self._take()
            if batch:
                self._send(lane, batch)
        if not self._full():
            self._wake()

    def _take(self) -> list[_Item]:
        batch: list[_Item] = []
        size = 0
        while self._pending and len(batch) < BATCH_BODIES:
            item = self._pending[0]
            if batch and not item.fut.done() and size + item.size > BATCH_BYTES:
                break
            self._pending.popleft()
            self._pending_bytes -= item.size
            if not item.fut.done():  # its awaiter was cancelled: not worth detecting
                batch.append(item)
                size += item.size
        return batch

    def _send(self, lane: str, batch: list[_Item]) -> None:
        items = [i.args for i in batch]
        try:
            if lane == "pool":
                assert self._pool is not None
                cf = self._pool.submit(detect_batch_in_worker, items)
                self.batches_sent += 1
            else:
                cf = self._thread.submit(self._detect_batch_here, items)
                self.batches_here += 1
        except BrokenProcessPool as exc:
            self._fail(exc, batch)
            return
        except RuntimeError:  # its executor is shut down: the detector is closing
            for i in batch:
                i.fut.cancel()
            return
        self._in_flight[lane] += 1
        self._bodies_in_flight += len(batch)
        if lane == "pool":
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight["pool"])
        cf.add_done_callback(partial(self._from_thread, self._batch_done, lane, batch))

    def _from_thread(self, fn: Callable, *args) -> None:
        """A concurrent future's callback (an executor's thread) hands over to the event loop."""
        with contextlib.suppress(RuntimeError):  # the loop is closed: nothing awaits this any more
            self._loop.call_soon_threadsafe(fn, *args)

    def _batch_done(self, lane: str, batch: list[_Item], cf: Future) -> None:
        self._in_flight[lane] -= 1
        self._bodies_in_flight -= len(batch)
        if cf.cancelled():
            for i in batch:
                i.fut.cancel()
        elif cf.exception() is not None:
            exc = cf.exception()
            if isinstance(exc, BrokenProcessPool):
                self._fail(exc, batch)
            else:  # the batch as a whole (pickling, the worker's own code): no text crosses over
                for i in batch:
                    if not i.fut.done():
                        i.fut.set_exception(exc if lane == "here" else WorkerFailure.of(exc).exception())
        else:
            for i, out in zip(batch, cf.result()):
                if i.fut.done():
                    continue
                if isinstance(out, WorkerFailure):
                    i.fut.set_exception(out.exception())
                elif isinstance(out, BaseException):
                    i.fut.set_exception(out)  # the thread's: in this process, as raised
                else:
                    i.fut.set_result(out)
        self._dispatch(any_size=True)

    # -- the pool ------------------------------------------------------------------------------------
    def _maybe_start_pool(self) -> None:
        if (not self.pooled or not self._started or self._pool_state != "off" or self._closed
                or self._failed is not None or self.work < self.pool_after):
            return
        self._pool_state = "starting"
        self._pool_asked = time.monotonic()
        self._spawned.clear()
        log.info("detection: starting %d worker processes after %d bodies", self.jobs, self.bodies)
        try:  # spawning blocks (a child reads its start-up data from a pipe): not on the event loop
            spawned = self._loop.run_in_executor(None, self._spawn_pool)
        except RuntimeError as exc:  # the loop's executor is shut down: the loop is ending
            self._spawned.set()
            self._no_pool(exc)
            return
        spawned.add_done_callback(self._pool_spawned)

    def _spawn_pool(self) -> list[Future]:
        try:
            self._pool, ready = start_detect_pool(self.jobs, self.engine, self.key)
            return ready
        finally:
            self._spawned.set()

    def _pool_spawned(self, spawned: asyncio.Future) -> None:
        if self._closed or spawned.cancelled():
            return
        if spawned.exception() is not None:
            self._no_pool(spawned.exception())
            return
        for cf in spawned.result():
            cf.add_done_callback(partial(self._from_thread, self._worker_up))

    def _worker_up(self, cf: Future) -> None:
        if self._closed or cf.cancelled():
            return
        if cf.exception() is not None:  # nothing was sent to a pool still starting: the thread goes on
            (self._no_pool if self._pool_state == "starting" else self._fail)(cf.exception())
            return
        self.worker_pids.add(cf.result())
        if self._pool_state == "starting" and self._failed is None:
            self._pool_state = "up"
            self.pool_startup_s = time.monotonic() - self._pool_asked
            log.info("detection: worker processes up in %.2f s", self.pool_startup_s)
            self._settled.set()
            self._dispatch(any_size=True)

    def _no_pool(self, exc: BaseException) -> None:
        """The pool could not start (no batch went to it yet): detection stays on the thread."""
        log.warning("detection: the worker processes could not start (%s); detecting in the scanning "
                    "process", describe(exc))
        self.pooled, self._pool_state = False, "off"
        self._settled.set()

    def _fail(self, exc: BaseException, batch: list[_Item] | tuple = ()) -> None:
        """The pool broke: every body queued or in that batch fails, and so does every later detect()."""
        if self._failed is None and not self._closed:
            self._failed = ("a detection worker process died (killed, or out of memory?), so the scan "
                            "stopped incomplete; rerun to resume (--jobs 1 detects in the scanning process)")
            log.debug("detection: the pool broke (%s)", type(exc).__name__)
        self._end_queued([*batch, *self._pending], partial(self._failed_at, exc))

    def _failed_at(self, exc: BaseException, fut: asyncio.Future) -> None:
        failed = DetectorFailed(self._failed or "the detector is closed")
        failed.__cause__ = exc if isinstance(exc, BrokenProcessPool) else None
        fut.set_exception(failed)

    def _end_queued(self, items: list[_Item], end: Callable[[asyncio.Future], Any]) -> None:
        """Each of `items` not done yet ends by `end`; the queue empties; waiters wake (and see why)."""
        for i in items:
            if not i.fut.done():
                end(i.fut)
        self._pending.clear()
        self._pending_bytes = 0
        self._settled.set()
        self._wake()

    # -- closing -------------------------------------------------------------------------------------
    def _stop_queued(self) -> None:
        """On the event loop: no new work; what is queued here is cancelled, waiters are woken."""
        self._closed = True
        if self._flush is not None:
            self._flush.cancel()
        self._end_queued(list(self._pending), asyncio.Future.cancel)

    def _shutdown_blocking(self) -> None:
        """Any thread: the pool (queued batches cancelled, running ones finish, processes joined) and
        the thread."""
        self._spawned.wait()  # a pool being spawned is shut down once it exists
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._thread.shutdown(wait=True, cancel_futures=True)


def detect_body(engine: Any, key: bytes, body: bytes, side: str, source: str | None = None,
                strings: list | None = None, secret_sink: Callable[[str], Any] | None = None
                ) -> tuple[ContentResult, list]:
    """One content body through the engine. The secrets in the engine's hits end here: only their
    fingerprint, preview and length leave this function, and for each hit where the action's
    `strings` (posture.action_strings) hold it typed in, that path (else None).

    `source`: the action is a secret source (Key Vault Get secret…) by its definition, so the
    value at its documented output field is a secret even if nothing else would flag it."""
    parsed = decode_body(body)
    raw = engine.scan(parsed, side=side)
    found = list(raw.hits)
    if source:
        for sh in source_output_hits(source, parsed, side):
            # the whole field is the secret: a pattern/entropy hit on a piece of it is the same leak,
            # and so is an entropy hit on all of it (the source output is the more specific rule)
            found = [h for h in found if h.detector == "known_value" or not (
                h.json_path == sh.json_path and h.secret in sh.secret
                and (h.secret != sh.secret or h.detector == "entropy"))]
            if not any(h.secret == sh.secret or (h.detector == "known_value" and h.json_path == sh.json_path
                                                 and h.secret in sh.secret) for h in found):
                found.append(sh)
    if secret_sink is not None:
        for h in found:
            secret_sink(h.secret)
    hits = tuple(RedactedHit.of(h, key) for h in found)
    literals = [literal_path(strings, h.secret) if strings else None for h in found]
    return ContentResult(hits, tuple(raw.skipped), tuple(raw.dropped)), literals


def decode_body(body: bytes) -> Any:
    """Content is JSON in practice; anything else is scanned as text (or bytes when not UTF-8)."""
    try:
        return json.loads(body)
    except (ValueError, RecursionError):
        pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return body
