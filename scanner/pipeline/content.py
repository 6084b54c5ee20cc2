"""The fetch-content stage: each read run's content links fetched (a run's units side by side) and
handed to the detect stage (detection.py), or, for a body scanned before (the same md5 and size), its
stored result reused; an expired link gets one re-read of the run for a fresh one. Downloads have
their own connection slots and pacer (scanner/net/content.py): a 429 on the API never stalls them.
When a run's units are all done, its rows go to the record stage (record.py).

The stored results of a run's units are looked up in one query through the writer; a body being
fetched for one unit is not fetched again for another unit with the same identity (it waits for
that result).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import logging
from collections import OrderedDict
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from scanner.api.flow_api import as_dict, is_secured, link_key, parse_api_time
from scanner.net.errors import FlowleaksHttpError, LinkExpired
from scanner.pipeline.detection import ContentResult
from scanner.pipeline.queues import Closable, drain, together
from scanner.pipeline.runs import NO_CONTENT_TYPES, NOT_RUN_STATUSES, ContentUnit, RunRead
from scanner.store.database import Store

if TYPE_CHECKING:
    from scanner.net.http import HttpClient
    from scanner.pipeline.crawl import CrawlOptions, CrawlStats
    from scanner.pipeline.detection import Detector
    from scanner.pipeline.plan import FlowContext
    from scanner.pipeline.record import Recorder
    from scanner.pipeline.writer import StoreWriter

log = logging.getLogger("flowleaks.crawl")
REMEMBERED = 20_000  # content results kept in memory (md5 key -> result), besides the stored ones


def cache_version(engine: Any, key: bytes) -> str:
    """The identity a cached content result depends on: the engine (rule set with its code version,
    the known-value set, limits) and the fingerprint key (the cached hits carry fingerprints made
    with it). The key enters only as a keyed digest, so the database cannot be used to test keys."""
    key_id = hmac.new(key, b"flowleaks content cache key id", hashlib.sha256).hexdigest()[:16]
    return hashlib.sha256(f"{engine.version}|{key_id}".encode()).hexdigest()[:32]


def valid_md5_key(link: dict) -> str | None:
    """The md5+size identity of a body, only when the hash really is an md5 (16 bytes of base64):
    a fake or placeholder hash ('test==') must never make two different bodies look the same."""
    key = link_key(link)
    if not key:
        return None
    try:
        return key if len(base64.b64decode(key.rsplit(":", 1)[0], validate=True)) == 16 else None
    except ValueError:
        return None


@dataclass
class RunResult:
    """A run the content stage is done with: what the record stage writes for it."""
    ctx: FlowContext
    run_id: str
    props: dict
    run_start: str | None
    meta: list[tuple]
    scanned: int
    skipped: int


class FetchContent:
    """The fetch-content stage: `run` takes read runs from `runs` until it is closed."""

    def __init__(self, http: HttpClient, detector: Detector, db: StoreWriter, engine_version: str,
                 options: CrawlOptions, stats: CrawlStats, rec: Recorder,
                 reread: Callable[[FlowContext, str], Awaitable[list[ContentUnit]]]):
        self.http, self.detector, self.db, self.engine_version = http, detector, db, engine_version
        self.opt, self.stats, self.rec = options, stats, rec
        self.reread = reread  # the read-runs stage's fresh read of a run's units (expired links)
        self.reuse: OrderedDict[str, ContentResult] = OrderedDict()  # md5 key -> result (memory)
        self.inflight: dict[str, asyncio.Future] = {}  # md5 key -> the result of the fetch under way

    async def run(self, runs: Closable[RunRead]) -> None:
        await drain(runs, self.opt.max_runs_in_flight, self.scan_run)

    async def scan_run(self, item: RunRead) -> None:
        ctx = item.ctx
        try:
            self.rec.add_run(await self._scan_run(item))
        except FlowleaksHttpError as exc:  # the re-read for fresh links failed: the run is skipped
            self.rec.skip(ctx.environment, ctx.flow_id, item.run_id, None, None, exc.reason, str(exc))
        await self.rec.run_ended()
        ctx.run_ended()

    async def _scan_run(self, item: RunRead) -> RunResult:
        ctx, run_id, units = item.ctx, item.run_id, item.units
        props = as_dict(item.run.get("properties")) or as_dict(item.listed.get("properties"))
        run_start = parse_api_time(props.get("startTime"))
        stored = await self.stored_results(ctx, units)  # the run's cached results, in one query
        done = await together(*(self.scan_unit(ctx, run_id, run_start, u, stored=stored) for u in units))
        scanned = sum(done)
        expired = [u for u, ok in zip(units, done) if not ok]
        skipped = 0
        if expired:  # an expired link: re-read the run once for fresh links
            refreshed = {(u.action, u.repetition, u.side): u for u in await self.reread(ctx, run_id)}
            again = []
            for unit in expired:
                fresh = refreshed.get((unit.action, unit.repetition, unit.side))
                if fresh is None or fresh.link is None:  # the re-read run lacks it: still the expired link
                    self.rec.skip(ctx.environment, ctx.flow_id, run_id, unit.action, unit.side, "expired",
                                  "content link expired and the re-read run has no fresh link", unit.repetition)
                    skipped += 1
                else:
                    again.append(fresh)
            ok = await together(*(self.scan_unit(ctx, run_id, run_start, u, last_try=True) for u in again))
            scanned += sum(ok)
            skipped += len(ok) - sum(ok)
        return RunResult(ctx, run_id, props, run_start, item.meta, scanned, skipped)

    def content_key(self, ctx: FlowContext, unit: ContentUnit) -> str | None:
        """The unit's content-cache key (md5+size, and the secret source it is the output of), or None
        when results are not reused or the body has no trustworthy identity."""
        if not self.opt.reuse_content or unit.link is None or is_secured(unit.link):
            return None
        key = valid_md5_key(unit.link)
        source = ctx.sources.get(unit.action) if unit.side == "action_outputs" else None
        if key and source:  # the same body means more when it is a secret source's output
            key = f"{key}|{source}"
        return key

    async def stored_results(self, ctx: FlowContext, units: list[ContentUnit]) -> dict[str, str]:
        """The stored results of a run's units not already in memory: one query through the writer,
        not one per unit. A key missing from the answer was not stored (scan_unit does not ask again)."""
        keys = [k for k in (self.content_key(ctx, u) for u in units) if k and k not in self.reuse]
        return await self.db.run(Store.content_results, keys, self.engine_version) if keys else {}

    async def scan_unit(self, ctx: FlowContext, run_id: str, run_start: str | None, unit: ContentUnit,
                        last_try: bool = False, stored: dict[str, str] | None = None) -> bool:
        """Fetch and scan one content link. False only for an expired link worth one more try.
        `stored`: `stored_results` of the run's units (a key it lacks was asked for and not found);
        None: this unit's key is looked up alone."""
        env, flow = ctx.environment, ctx.flow_id
        link = unit.link
        if link is None:
            self.missing_link(ctx, run_id, unit)
            return True
        if is_secured(link):
            detail = "secureData" if isinstance(link, dict) and link.get("secureData") else "no uri"
            self.rec.skip(env, flow, run_id, unit.action, unit.side, "secured", detail, unit.repetition)
            return True
        source = ctx.sources.get(unit.action) if unit.side == "action_outputs" else None
        key = self.content_key(ctx, unit)
        if key:
            cached = self.reuse.get(key)
            if cached is None:
                if stored is None:
                    stored = await self.stored_results(ctx, [unit])
                text = stored.get(key)
                cached = ContentResult.from_json(text) if text else None
            if cached is None and key in self.inflight:  # the same body is on its way for another unit
                cached = await asyncio.shield(self.inflight[key])
            if cached is not None:
                self._remember(key, cached)
                self.stats.content_reused += 1
                self.rec.add_result(ctx, run_id, run_start, unit, cached)
                return True
        result: ContentResult | None = None
        waiting = self.inflight.setdefault(key, asyncio.get_running_loop().create_future()) if key else None
        try:
            try:
                body = await self.http.fetch_content(str(link["uri"]))
            except LinkExpired as exc:
                if not last_try:
                    return False
                self.rec.skip(env, flow, run_id, unit.action, unit.side, exc.reason, str(exc), unit.repetition)
                return True
            except FlowleaksHttpError as exc:
                self.rec.skip(env, flow, run_id, unit.action, unit.side, exc.reason, str(exc), unit.repetition)
                return True
            self.stats.content_fetched += 1
            result = await self.detect(ctx, unit, body, source)
        finally:
            if waiting is not None:  # the units waiting for this body: its result, or None to fetch it themselves
                del self.inflight[key]
                waiting.set_result(result)
        if key:
            self._remember(key, result)
            self.rec.add_content_result(key, self.engine_version, result)
        self.rec.add_result(ctx, run_id, run_start, unit, result)
        return True

    async def detect(self, ctx: FlowContext, unit: ContentUnit, body: bytes, source: str | None) -> ContentResult:
        """One body through the detect stage; each hit's posture cause is noted while its literal path
        (where the action's definition types the value in) is known."""
        result, literals = await self.detector.detect(body, unit.side, source, ctx.action_strings(unit.action))
        for h, literal in zip(result.hits, literals):
            ctx.cause(unit.action, unit.side, h.fingerprint, literal=literal, detected=True)
        return result

    def _remember(self, key: str, result: ContentResult) -> None:
        self.reuse[key] = result
        self.reuse.move_to_end(key)
        if len(self.reuse) > REMEMBERED:
            self.reuse.popitem(last=False)

    def missing_link(self, ctx: FlowContext, run_id: str, unit: ContentUnit) -> None:
        """Record a side without a link for what it is: secured by the definition, not run (yet), a side
        the action has no content on, or a link the API should have given and did not (blocking)."""
        io = unit.side.rsplit("_", 1)[1]
        if io in ctx.secured.get(unit.action, frozenset()):
            reason, detail = "secured", "no link; the definition secures it"
        elif unit.status in NOT_RUN_STATUSES:
            reason, detail = "not run", f"status {unit.status}"
        elif unit.sibling:
            reason, detail = "no content", f"no {io}Link beside a readable link"
        elif ctx.action_types.get(unit.action, "").lower() in NO_CONTENT_TYPES:
            reason, detail = "no content", f"a {ctx.action_types[unit.action]} has no content"
        else:
            reason, detail = "no link", f"the {unit.status or 'unknown'} execution has no {io}Link and is not secured"
        self.rec.skip(ctx.environment, ctx.flow_id, run_id, unit.action, unit.side, reason, detail, unit.repetition)
