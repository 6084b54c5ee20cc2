"""The plan stage: the environments and flows in scope (environments listed in parallel), each flow's
definition and its posture, and which of its runs to read (a time window, or after the watermark the
last nightly scan left). Everything a flow needs before its runs are listed is read here, once per
flow, up front; the flow then goes to the read-runs stage (runs.py) on a bounded queue.

An unchanged flow in a nightly scan keeps its definition unread until it has new runs to explain:
the read-runs stage asks for it then (`load_definition`), once.
"""
from __future__ import annotations

import asyncio
import functools
import logging
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from scanner.api.flow_api import FlowApi, as_dict, odata_time, parse_api_time, run_filter, text
from scanner.errors import describe
from scanner.net.errors import ApiError, FlowleaksHttpError, TokenRejected
from scanner.pipeline.queues import Closable
from scanner.posture import model as defn
from scanner.posture.analyze import analyze_definition
from scanner.posture.canonical import definition_hash
from scanner.posture.explain import action_strings, explain
from scanner.posture.sources import secret_sources
from scanner.store.database import Store
from scanner.store.lifecycle import RETENTION_DAYS

if TYPE_CHECKING:
    from scanner.pipeline.crawl import CrawlOptions, CrawlStats
    from scanner.pipeline.detection import Detector
    from scanner.pipeline.record import Recorder
    from scanner.pipeline.writer import StoreWriter

log = logging.getLogger("flowleaks.crawl")
# API time text: date, time to the second, any fractional digits, maybe 'Z'
API_TIME_TEXT = re.compile(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z?")
FLOWS_PLANNED_AT_ONCE = 8  # flows whose definition and window are being read at the same time


@dataclass
class RunWindow:
    """Which runs of one flow are read: after the watermark (nightly) or since a time (sweep), before
    `until`, of one status or all. The server filters (`filter`); `wanted` checks again, so a service
    that ignores $filter can't widen the sweep."""

    filter: str | None
    after: str | None           # the watermark: newest run start already scanned (API text)
    since: datetime | None      # the window's start when there is no watermark
    until: datetime | None
    status: str                 # lowercased; "" for every status
    running: list[str]          # runs still Running last time: read again by name
    low: str | None             # the bounds as sortable_time text
    high: str | None

    def wanted(self, run: dict) -> bool:
        props = as_dict(run.get("properties"))
        start = sortable_time(props.get("startTime"))
        if start is not None and self.low is not None and (start <= self.low if self.after else start < self.low):
            return False
        if start is not None and self.high is not None and start >= self.high:
            return False
        return not self.status or text(props.get("status")).lower() in ("", self.status)

    def span(self) -> tuple:
        """(low, high, low_exclusive): the window a complete listing of it covers (FlowContext.window)."""
        return ((parse_watermark(self.after) if self.after else self.since), self.until, bool(self.after))


@dataclass
class FlowContext:
    """One flow on its way through the stages: what the plan read, and what its runs add to it."""

    environment: str
    flow_id: str
    display_name: str | None
    definition: dict | None
    action_types: dict[str, str]
    props: dict = field(default_factory=dict)
    loaded: bool = False
    run_window: RunWindow | None = None  # set by the plan stage
    newest_start: str | None = None     # newest run start seen (API text, no 'Z'), for the watermark
    running: set[str] = field(default_factory=set)  # runs still Running: read again next time
    causes: dict = field(default_factory=dict)       # (action, side[, fingerprint]) -> Cause | None
    strings: dict = field(default_factory=dict)      # action -> its strings (posture.action_strings)
    sources: dict[str, str] = field(default_factory=dict)  # action -> secret source kind (Key Vault…)
    secured: dict[str, frozenset[str]] = field(default_factory=dict)  # action -> sides it secures
    gone: list[str] = field(default_factory=list)    # runs the API answered 404 for
    listed: set[str] = field(default_factory=set)    # runs the listing returned in the window
    window: tuple | None = None  # (low, high, low_exclusive) of a complete, unfiltered runs listing
    # Runs of this flow still somewhere in the stages, and whether its listing ended: the flow is
    # finished (gone runs resolved, watermark advanced) once both say so (runs.py: finish_flow).
    open_runs: int = 0
    listing_done: bool = False
    finished: asyncio.Event = field(default_factory=asyncio.Event)

    def run_started(self) -> None:
        self.open_runs += 1

    def run_ended(self) -> None:
        self.open_runs -= 1
        self._check_finished()

    def listing_ended(self) -> None:
        self.listing_done = True
        self._check_finished()

    def _check_finished(self) -> None:
        if self.listing_done and self.open_runs == 0:
            self.finished.set()

    def cause(self, action: str, side: str, fp: str | None, literal: str | None = None, detected: bool = False):
        """The posture cause of a secret seen in `action`'s `side`, memoised per flow.

        Right after detection (`detected`), `literal` says where the value is typed into the action
        (posture.literal_path, computed where the secret was: PA005/PA004) or None (it arrived at run
        time); the answer is kept under the secret's fingerprint, so a body reused from the content
        cache still gets the precise cause."""
        if self.definition is None:
            return None
        key = (action, side, fp) if detected or (action, side, fp) in self.causes else (action, side)
        if key not in self.causes:
            try:
                self.causes[key] = explain(self.definition, action, side, literal=literal)
            except Exception:  # noqa: BLE001 - no cause is better than no finding
                self.causes[key] = None
        return self.causes[key]

    def action_strings(self, action: str) -> list:
        """The action's strings, for telling a typed value from a run-time one where detection runs."""
        if self.definition is None:
            return []
        if action not in self.strings:
            try:
                self.strings[action] = action_strings(self.definition, action)
            except Exception:  # noqa: BLE001 - an odd definition costs the PA005 cause, not the scan
                self.strings[action] = []
        return self.strings[action]


class Plan:
    """The plan stage: `run` puts each flow in scope, planned, on `flows` (then closes it)."""

    def __init__(self, api: FlowApi, db: StoreWriter, detector: Detector, engine: Any, key: bytes,
                 options: CrawlOptions, scan_id: str, stats: CrawlStats, rec: Recorder):
        self.api, self.db, self.detector, self.engine, self.key = api, db, detector, engine, key
        self.opt, self.scan_id, self.stats, self.rec = options, scan_id, stats, rec
        self.flow_listing_failed = False
        self.flows_seen: dict[str, str] = {}  # lower(id or display name) -> "name (id)", for --flow errors
        self.slots = asyncio.Semaphore(FLOWS_PLANNED_AT_ONCE)

    async def run(self, flows: Closable) -> None:
        try:
            await self._plan(flows)
        finally:
            flows.close()

    async def _plan(self, flows: Closable) -> None:
        log.info("listing environments")
        try:
            envs = await self.api.environments(on_rehome=self.rec.rehomed(None))
        except FlowleaksHttpError as exc:
            if isinstance(exc, ApiError) and exc.status in (401, 403):  # the token, not one environment
                raise TokenRejected(exc, self.api.audience, self.api.as_admin) from None
            self.rec.skip(None, None, None, None, None, exc.reason, f"listing environments: {exc}")
            return
        wanted = {e.lower() for e in self.opt.environments}
        if wanted:
            found = {e.name.lower() for e in envs} | {(e.display_name or "").lower() for e in envs}
            for missing in sorted(wanted - found):
                self.stats.unmatched_scope.append(f"--env {missing}")
                self.rec.skip(missing, None, None, None, None, "not found", "environment not listed by the API")
            if wanted - found:
                self.stats.known_scope = sorted(f"{e.name} ({e.display_name})" if e.display_name else e.name
                                                for e in envs)
            envs = [e for e in envs if e.name.lower() in wanted or (e.display_name or "").lower() in wanted]
        log.info("%d environment(s) in scope", len(envs))
        self.stats.environments_planned = len(envs)
        await self.db.write(Store.upsert_environments, [(e.name, e.display_name, e.location, e.is_default,
                                                          e.flow_endpoint, self.scan_id) for e in envs])
        await asyncio.gather(*(self.plan_environment(env.name, flows) for env in envs))
        self._check_scope(envs)

    def _check_scope(self, envs: list) -> None:
        """A scope that matches nothing is a typo, not a clean result; nothing listed is not clean either."""
        wanted = {f.lower() for f in self.opt.flows}
        if wanted and envs:
            missing = sorted(w for w in wanted if w not in self.flows_seen)
            for m in missing:
                self.stats.unmatched_scope.append(f"--flow {m}")
            if missing:
                self.stats.known_scope = sorted(set(self.flows_seen.values()))
        if envs and self.stats.flows_listed == 0 and not self.flow_listing_failed:
            self.rec.skip(None, None, None, None, None, "nothing in scope",
                          "the API listed no flows: an identity in maker scope sees only its own flows; use "
                          "--as-admin, and register the app as a Power Platform management app")
        elif not envs and not self.stats.unmatched_scope:
            self.rec.skip(None, None, None, None, None, "nothing in scope",
                          "the API listed no environments: check the identity's Power Platform access")

    async def plan_environment(self, env: str, flows: Closable) -> None:
        wanted = {f.lower() for f in self.opt.flows}
        tasks: list[asyncio.Task] = []
        log.info("listing flows of %s", env)
        try:
            async for item in self.api.flows(env, on_rehome=self.rec.rehomed(env)):
                flow_id = str(item.get("name"))
                name = text(as_dict(item.get("properties")).get("displayName"))
                self.stats.flows_listed += 1
                label = f"{name} ({flow_id})" if name else flow_id
                self.flows_seen[flow_id.lower()] = label
                if name:
                    self.flows_seen[name.lower()] = label
                if wanted and flow_id.lower() not in wanted and name.lower() not in wanted:
                    continue
                if self.opt.shard is not None and not self.opt.shard.owns(env, flow_id):
                    self.stats.flows_other_shards += 1  # listed (scope checks see it), scanned elsewhere
                    continue
                self.stats.flows_planned += 1
                await self.slots.acquire()
                tasks.append(asyncio.create_task(self._plan_flow(env, item, flows)))
        except FlowleaksHttpError as exc:
            self.flow_listing_failed = True
            self.rec.skip(env, None, None, None, None, exc.reason, f"listing flows: {exc}")
        finally:
            if tasks:  # a failed listing still hands on the flows it planned (or their error)
                await asyncio.gather(*tasks)
        self.stats.environments_scanned += 1  # listed, and every flow of it handed on

    async def _plan_flow(self, env: str, item: dict, flows: Closable) -> None:
        try:  # the slot is held until the flow is handed on: the plan never runs far ahead of the runs
            await flows.put(await self.plan_flow(env, item))
        finally:
            self.slots.release()

    async def plan_flow(self, env: str, item: dict) -> FlowContext:
        flow_id = str(item.get("name"))
        props = as_dict(item.get("properties"))
        ctx = FlowContext(env, flow_id, props.get("displayName"), None, {})
        modified = props.get("lastModifiedTime")
        stored_modified, stored_hash = await self.db.run(Store.flow_modified, env, flow_id)
        # Nightly: an unchanged flow is not re-read unless it has new runs to explain.
        if not (self.opt.incremental and stored_hash and modified and modified == stored_modified):
            await self.load_definition(ctx, props)
        else:
            ctx.props = props
            await self.db.write(Store.touch_flow, env, flow_id, self.scan_id)
        ctx.run_window = await self.run_window(ctx)
        return ctx

    async def load_definition(self, ctx: FlowContext, props: dict) -> None:
        """Read the flow with its definition, store the flow row, and run the posture rules on it."""
        if ctx.loaded:
            return
        ctx.loaded = True
        env, flow_id = ctx.environment, ctx.flow_id
        try:
            full = await self.api.get_flow(env, flow_id)
            props = {**props, **(full.get("properties") or {})}
        except FlowleaksHttpError as exc:
            self.rec.skip(env, flow_id, None, None, "definition", exc.reason, f"reading flow: {exc}")
        definition = props.get("definition")
        ctx.definition = definition if isinstance(definition, dict) else None
        # Odd parts are recorded (flow named, JSON path) and ignored by the readers; the flow's runs
        # are still scanned and the sweep goes on.
        for problem in defn.problems(definition) if definition is not None else ():
            self.rec.skip(env, flow_id, None, None, "definition", "definition unreadable",
                          f"{ctx.display_name or flow_id}: {problem}")
        ctx.action_types = defn.action_types(ctx.definition) if ctx.definition else {}
        ctx.sources = secret_sources(ctx.definition) if ctx.definition else {}
        ctx.secured = defn.secured_sides(ctx.definition) if ctx.definition else {}
        ctx.display_name = props.get("displayName") or ctx.display_name
        d = ctx.definition
        await self.db.write(Store.upsert_flows, [{
            "environment": env, "flow_id": flow_id, "display_name": props.get("displayName"),
            "creator": as_dict(props.get("creator")).get("objectId"), "state": props.get("state"),
            "definition_hash": definition_hash(d) if d else None,
            "created_time": parse_api_time(props.get("createdTime")),
            "last_modified_time": parse_api_time(props.get("lastModifiedTime")),
            "modified_marker": props.get("lastModifiedTime"),
            "trigger_type": defn.trigger_type(d) if d else None,
            "connectors": defn.connectors(d) if d else None,
            "scan_id": self.scan_id}])
        if d:
            try:
                found = await self.detector.run_here(functools.partial(
                    analyze_definition, d, flow_name=ctx.display_name or flow_id, engine=self.engine, key=self.key))
            except Exception as exc:  # noqa: BLE001 - one odd definition must not stop the sweep
                self.rec.skip(env, flow_id, None, None, "definition", "posture error", describe(exc))
            else:
                self.rec.add_posture(ctx, found)

    async def run_window(self, ctx: FlowContext) -> RunWindow:
        """The flow's run window (sets `ctx.newest_start` to the watermark; runs read may advance it)."""
        env, flow_id = ctx.environment, ctx.flow_id
        after, running = await self.db.run(Store.watermark, env, flow_id) if self.opt.incremental else (None, [])
        since = None
        if after:
            filt = run_filter(None, self.opt.until, self.opt.status, after_raw=after)
        else:
            since = self.opt.since or (datetime.now(timezone.utc) - timedelta(days=RETENTION_DAYS))
            filt = run_filter(since, self.opt.until, self.opt.status)
        ctx.newest_start = after[:-1] if after else None
        low = sortable_time(after) if after else sortable_time(odata_time(since))
        high = sortable_time(odata_time(self.opt.until)) if self.opt.until else None
        return RunWindow(filt, after, since, self.opt.until, (self.opt.status or "").lower(), running, low, high)


def parse_watermark(raw: str) -> datetime:
    """A watermark's API text (7 fractional digits, maybe 'Z') as a UTC datetime (microseconds)."""
    m = API_TIME_TEXT.fullmatch(raw.strip())
    if not m:
        raise ValueError(f"not a watermark: {raw!r}")
    return datetime.fromisoformat(f"{m.group(1)}.{(m.group(2) or '')[:6].ljust(6, '0')}").replace(tzinfo=timezone.utc)


def sortable_time(value: Any) -> str | None:
    """API time text as 'YYYY-MM-DDTHH:MM:SS.fffffff' (UTC), comparable as a string; None if it isn't."""
    m = API_TIME_TEXT.fullmatch(value) if isinstance(value, str) else None
    return f"{m.group(1)}.{(m.group(2) or '')[:7].ljust(7, '0')}" if m else None
