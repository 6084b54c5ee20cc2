"""The crawl: a one-way pipeline of stages joined by bounded queues.

    plan ──flows──▶ read runs ──runs──▶ fetch content ──bodies──▶ detect ──results──▶ record ──▶ writer

- plan.py: environments (in parallel) and the flows in scope; each flow's definition, posture and
  run window (a time window, or after the watermark), read once per flow, up front;
- runs.py: each flow's run listing and each run's read (`$expand`, else the actions list; loop
  repetitions), paced by the API pacer; a flow finishes when all its runs are recorded;
- content.py: content links, with their own connection slots and pacer, or a stored result reused;
- detection.py: the detectors, in worker processes fed batches of bodies (`--jobs`); only redacted
  results come back (fingerprint, preview, length, JSON path, rule), never a value;
- record.py: skips, findings and rows into batches for writer.py, the one thread that owns DuckDB.

The queues are bounded, so a slow stage makes the one before it wait and memory stays flat however
large the tenant is. The crawl never touches the database: every read and write goes through the
StoreWriter; batches are queued to it and the crawl's end drains it. A failure in any stage stops
every stage and is raised as itself (queues.py).
"""
from __future__ import annotations

import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Callable

from scanner.api.flow_api import FlowApi
from scanner.errors import describe
from scanner.net.http import HttpClient
from scanner.pipeline.content import FetchContent, cache_version
from scanner.pipeline.detection import Detector
from scanner.pipeline.plan import FlowContext, Plan
from scanner.pipeline.queues import Closable, together
from scanner.pipeline.record import Recorder
from scanner.pipeline.runs import ReadRuns, RunRead
from scanner.pipeline.writer import StoreWriter

log = logging.getLogger("flowleaks.crawl")
FLOWS_QUEUED = 8  # planned flows waiting for the read-runs stage


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
    max_runs_in_flight: int = 64        # runs read and waiting for content, and runs whose content is fetched
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
    detection: dict = field(default_factory=dict)  # where bodies were detected (Detector's counts)
    started: float = field(default_factory=time.monotonic)

    @property
    def complete(self) -> bool:
        return self.blocking_skips == 0


class Crawl:
    """One crawl of a tenant: builds the stages, runs them side by side, and drains the writer."""

    def __init__(self, api: FlowApi, http: HttpClient, db: StoreWriter, engine: Any, key: bytes,
                 options: CrawlOptions, scan_id: str,
                 on_progress: Callable[[CrawlStats, HttpClient], None] | None = None):
        # `db`: the writer thread that owns the Store; the crawl never holds the Store itself
        self.api, self.http, self.db, self.engine, self.key = api, http, db, engine, key
        self.opt, self.scan_id = options, scan_id
        self.stats = CrawlStats()
        progress = on_progress or (lambda s, h: None)
        self.rec = Recorder(db, key, options, scan_id, self.stats, lambda: progress(self.stats, http))
        self.detector = Detector(engine, key, options.jobs, options.secret_sink)

    # What run_scan records before the crawl starts (known-value and Dataverse problems, PA007).
    async def prepare(self) -> None:
        await self.rec.prepare()

    def skip(self, *args: Any, **kw: Any) -> None:
        self.rec.skip(*args, **kw)

    def add_environment_posture(self, environment: str, found: list, resolve: bool = True) -> None:
        self.rec.add_environment_posture(environment, found, resolve)

    async def run(self) -> CrawlStats:
        await self.prepare()
        # after the vaults loaded: the engine's identity includes the known-value set, and the
        # detector's workers get the whole set (keyed hashes only)
        engine_version = cache_version(self.engine, self.key)
        self.detector.start()
        plan = Plan(self.api, self.db, self.detector, self.engine, self.key, self.opt, self.scan_id,
                    self.stats, self.rec)
        read = ReadRuns(self.api, plan, self.opt, self.stats, self.rec)
        fetch = FetchContent(self.http, self.detector, self.db, engine_version, self.opt, self.stats, self.rec,
                             read.reread_units)
        flows: Closable[FlowContext] = Closable(FLOWS_QUEUED)
        runs: Closable[RunRead] = Closable(self.opt.max_runs_in_flight)
        failed: BaseException | None = None
        try:
            await together(plan.run(flows), read.run(flows, runs), fetch.run(runs))
            await self.rec.flush(force=True)
            return self.stats
        except BaseException as exc:
            failed = exc
            raise
        finally:
            await self.detector.aclose()
            d = self.detector
            # workers: the pool's size once one of its workers was up (0: every body stayed in process)
            self.stats.detection = {"jobs": d.jobs, "bodies": d.bodies, "workers": d.jobs if d.worker_pids else 0,
                                    "batches_in_workers": d.batches_sent, "batches_in_process": d.batches_here}
            # The crawl ends when its writes are stored: run_scan counts what it stored after this.
            write_failed = await self.db.drain()
            if write_failed is not None and failed is None:
                raise write_failed
            if write_failed is not None and write_failed is not failed:
                log.warning("a write failed as well: %s", describe(write_failed))
