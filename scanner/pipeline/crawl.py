"""The crawl: environments → flows (+definition) → runs in the window → actions → content → detectors.

Wires the parts together and owns nothing else: the API client knows no detectors, detectors know
no HTTP, the store knows no HTTP. Concurrency is bounded twice: the HTTP client's slots bound
requests in flight, and `run_slots` bounds runs in progress so memory stays flat however large the
tenant is (runs stream through; nothing holds the tenant).

`Crawl` holds the state; its parts are one module per stage of the walk:
- plan.py: the environments and flows in scope, each flow's definition and posture, its run window
  (a time window, or after the watermark);
- runs.py: listing and reading the runs, and each run's content units (action, side, link);
- content.py: fetching a content link, or reusing the result for a body scanned before;
- detection.py: handing a body to the detectors (one thread, or worker processes) and back redacted;
- record.py: skips, findings and rows into the batch, flushed by the one writer; what is gone resolved.

The crawl never touches the database: every read and write goes through the StoreWriter (writer.py),
the one thread that owns the connection; batches are queued to it and the crawl's end drains it.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from scanner.api.flow_api import FlowApi
from scanner.errors import describe
from scanner.net.http import HttpClient
from scanner.pipeline.content import ContentFetching, cache_version
from scanner.pipeline.detection import ContentResult, Detection
from scanner.pipeline.plan import Planning
from scanner.pipeline.record import Recording
from scanner.pipeline.runs import RunReading
from scanner.pipeline.writer import StoreWriter
from scanner.store.database import Batch
from scanner.store.suppressions import ActiveSuppressions

log = logging.getLogger("flowleaks.crawl")


@dataclass
class CrawlOptions:
    environments: tuple[str, ...] = ()
    flows: tuple[str, ...] = ()
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None
    kind: str = "sweep"                 # sweep (IR, windowed) | scan (nightly, incremental)
    incremental: bool = False           # use and advance watermarks
    reuse_content: bool = False         # skip downloading content whose md5+size was scanned before
    batch_runs: int = 50                # runs per store transaction
    max_runs_in_flight: int = 64
    secret_sink: Callable[[str], Any] | None = None  # `record`: told each secret found, to scrub it
    shard: Any = None                   # scanner.pipeline.shard.Shard: only the flows that hash to it
    jobs: int = 1                       # detection processes (1: the detector thread, in process)


@dataclass
class CrawlStats:
    environments_planned: int = 0
    environments_scanned: int = 0
    flows_planned: int = 0
    flows_scanned: int = 0
    flows_other_shards: int = 0         # listed and in scope, but another shard's
    runs_planned: int = 0
    runs_scanned: int = 0
    content_fetched: int = 0
    content_reused: int = 0
    findings: int = 0
    skipped: Counter = field(default_factory=Counter)
    blocking_skips: int = 0
    outside_window: int = 0   # runs the server listed although they are outside the window
    flows_listed: int = 0     # flows the API listed in the chosen environments, before --flow
    unmatched_scope: list[str] = field(default_factory=list)  # --env/--flow values that matched nothing
    known_scope: list[str] = field(default_factory=list)      # what exists, to name in that error
    resolved: int = 0         # run findings resolved because the API no longer serves their run
    started: float = field(default_factory=time.monotonic)

    @property
    def complete(self) -> bool:
        return self.blocking_skips == 0


class Crawl(Planning, RunReading, ContentFetching, Detection, Recording):
    """One crawl of a tenant: the state is here; the methods of each stage are in its own module."""

    def __init__(self, api: FlowApi, http: HttpClient, db: StoreWriter, engine: Any, key: bytes,
                 options: CrawlOptions, scan_id: str,
                 on_progress: Callable[[CrawlStats, HttpClient], None] | None = None):
        # `db`: the writer thread that owns the Store; the crawl never holds the Store itself
        self.api, self.http, self.db, self.engine = api, http, db, engine
        self.key = key
        self.opt = options
        self.scan_id = scan_id
        self.stats = CrawlStats()
        self.on_progress = on_progress or (lambda s, h: None)
        self.batch = Batch.empty()
        self.batch_runs = 0
        self.run_slots = asyncio.Semaphore(options.max_runs_in_flight)
        # Detectors are CPU-bound: one worker thread keeps the event loop free for I/O.
        self.detect_pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="detect")
        self.proc_pool: ProcessPoolExecutor | None = None  # `jobs` > 1: see start_detectors
        self.suppressed: ActiveSuppressions | None = None  # read through the writer: `prepare`
        self.reuse: OrderedDict[str, ContentResult] = OrderedDict()  # md5 key -> result (memory)
        self.engine_version: str | None = None  # set when the crawl starts: vaults load before that
        self.flow_blocking: dict[tuple, int] = {}  # (env, flow) -> blocking skips: no watermark advance
        self.flow_listing_failed = False
        self.flows_seen: dict[str, str] = {}  # lower(id or display name) -> "name (id)", for --flow errors

    async def prepare(self) -> None:
        """What the crawl reads before it records anything (findings take their suppression status)."""
        if self.suppressed is None:
            self.suppressed = await self.db.run(ActiveSuppressions.load)

    async def run(self) -> CrawlStats:
        await self.prepare()
        self.engine_version = cache_version(self.engine, self.key)
        # after the vaults loaded: the workers get the whole known-value set (keyed hashes only)
        self.start_detectors()
        failed: BaseException | None = None
        try:
            return await self._run()
        except BaseException as exc:
            failed = exc
            raise
        finally:
            if self.proc_pool is not None:
                self.proc_pool.shutdown(wait=True, cancel_futures=True)
            # The crawl ends when its writes are stored: run_scan counts what it stored after this.
            write_failed = await self.db.drain()
            if write_failed is not None and failed is None:
                raise write_failed
            if write_failed is not None and write_failed is not failed:
                log.warning("a write failed as well: %s", describe(write_failed))
