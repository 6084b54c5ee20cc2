"""The crawl: environments → flows (+definition) → runs in the window → actions → content → detectors.

Wires the parts together and owns nothing else: the API client knows no detectors, detectors know
no HTTP, the store knows no HTTP. Concurrency is bounded twice: the HTTP client's slots bound
requests in flight, and `run_slots` bounds runs in progress so memory stays flat however large the
tenant is (runs stream through; nothing holds the tenant).
"""
from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import re
import time
from collections import Counter, OrderedDict
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

from detectors.base import Drop, Skip, fingerprint, preview
from detectors.source_outputs import source_output_hits

from scanner.posture import model as defn
from scanner.store import lifecycle
from scanner import posture
from scanner.api.flow_api import (FlowApi, content_links, is_secured, link_key, odata_time, parse_api_time, run_filter)
from scanner.errors import describe
from scanner.redact import redact_text
from scanner.skip_reasons import NON_BLOCKING_SKIPS
from scanner.net.http import ApiError, FlowleaksHttpError, HttpClient, LinkExpired
from scanner.store.database import Batch, Store, finding_id, utcnow

log = logging.getLogger("flowleaks.crawl")

RETENTION_DAYS = lifecycle.RETENTION_DAYS
# Trigger/action types whose executions carry no content links at all (a schedule fires with nothing).
NO_CONTENT_TYPES = frozenset({"recurrence"})
NOT_RUN_STATUSES = frozenset({"skipped", "running", "waiting", "paused", "suspended"})
# Definition action types that have no content links of their own in run history.
CONTAINER_TYPES = frozenset({"scope", "if", "switch", "foreach", "until", "terminate"})


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
    shard: Any = None                   # scanner.shard.Shard: only the flows that hash to it
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


@dataclass
class FlowContext:
    environment: str
    flow_id: str
    display_name: str | None
    definition: dict | None
    action_types: dict[str, str]
    props: dict = field(default_factory=dict)
    loaded: bool = False
    newest_start: str | None = None     # newest run start seen (API text, no 'Z'), for the watermark
    running: set[str] = field(default_factory=set)  # runs still Running: read again next time
    causes: dict = field(default_factory=dict)       # (action, side[, fingerprint]) -> Cause | None
    strings: dict = field(default_factory=dict)      # action -> its strings (posture.action_strings)
    sources: dict[str, str] = field(default_factory=dict)  # action -> secret source kind (Key Vault…)
    secured: dict[str, frozenset[str]] = field(default_factory=dict)  # action -> sides it secures
    gone: list[str] = field(default_factory=list)    # runs the API answered 404 for
    listed: set[str] = field(default_factory=set)    # runs the listing returned in the window
    window: tuple | None = None  # (low, high, low_exclusive) of a complete, unfiltered runs listing


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
class ContentUnit:
    action: str
    repetition: str | None
    side: str
    link: Any                   # the link object, None (the API sent null) or None when absent
    status: str = ""            # the action's (or repetition's) run status, lowercased
    sibling: bool = False       # the other side of the same action execution has a readable link


def units_of(name: str, repetition: str | None, prefix: str, props: dict) -> list[ContentUnit]:
    """The two sides of one trigger/action/repetition execution, as the API showed them."""
    links = content_links(props)
    status = text(props.get("status")).lower()
    return [ContentUnit(name, repetition, f"{prefix}_{io}", link, status,
                        not is_secured(links["outputs" if io == "inputs" else "inputs"]))
            for io, link in links.items()]


class Crawl:
    def __init__(self, api: FlowApi, http: HttpClient, store: Store, engine: Any, key: bytes,
                 options: CrawlOptions, scan_id: str,
                 on_progress: Callable[[CrawlStats, HttpClient], None] | None = None):
        self.api, self.http, self.store, self.engine = api, http, store, engine
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
        self.suppressed = {(fp, rule) for fp, rule in store.active_suppressions()}
        self.reuse: OrderedDict[str, ContentResult] = OrderedDict()  # md5 key -> result (memory)
        self.engine_version: str | None = None  # set when the crawl starts: vaults load before that
        self.flow_blocking: dict[tuple, int] = {}  # (env, flow) -> blocking skips: no watermark advance
        self.flow_listing_failed = False
        self.flows_seen: dict[str, str] = {}  # lower(id or display name) -> "name (id)", for --flow errors

    # -- skips and findings --------------------------------------------------------------------

    def skip(self, env: str | None, flow: str | None, run: str | None, action: str | None,
             side: str | None, reason: str, detail: str = "", repetition: str | None = None) -> None:
        self.stats.skipped[reason] += 1
        blocking = reason not in NON_BLOCKING_SKIPS
        if blocking:
            self.stats.blocking_skips += 1
            if side != "definition":  # the watermark is about runs: a definition problem doesn't hold it
                self.flow_blocking[(env, flow)] = self.flow_blocking.get((env, flow), 0) + 1
        # server messages can echo URLs (with their sig) or values: stored and logged redacted
        detail = redact_text(detail)[:500]
        log.log(logging.INFO if blocking else logging.DEBUG, "skipped %s%s%s%s: %s%s",
                env or "-", f"/{flow}" if flow else "", f"/{run}" if run else "", f" {action}" if action else "",
                reason, f" ({detail})" if detail else "")
        self.batch.skipped.append((self.scan_id, env, flow, run, action, side, reason, detail,
                                   repetition, utcnow()))

    def rehomed(self, env: str | None, flow: str | None = None, run: str | None = None,
                action: str | None = None) -> Callable[[str], None]:
        """A paging callback: a foreign nextLink re-read from home is on record, as a warning."""
        return lambda note: self.skip(env, flow, run, action, None, "nextLink rehomed", note)

    def _status_for(self, fp: str, fid: str, rule: str) -> str:
        for key in (fp, fid):
            if (key, None) in self.suppressed or (key, rule) in self.suppressed:
                return "suppressed"
        return "open"

    def add_result(self, ctx: FlowContext, run_id: str | None, run_start: str | None,
                   unit: ContentUnit, result: ContentResult) -> None:
        now = utcnow()
        seen: set[str] = set()
        for hit in result.hits:
            fp = hit.fingerprint
            fid = finding_id(ctx.environment, ctx.flow_id, run_id, unit.action, unit.repetition,
                             unit.side, hit.json_path, hit.rule_id, fp)
            if fid in seen:
                continue
            seen.add(fid)
            c = self.cause(ctx, unit.action, unit.side, fp)
            cause, remediation = (f"{c.rule_id} on '{c.action}'", c.remediation) if c else (None, None)
            self.batch.findings.append((
                fid, self.scan_id, ctx.environment, ctx.flow_id, run_id, unit.action, unit.repetition,
                unit.side, hit.json_path, hit.rule_id, hit.detector, fp, hit.preview,
                hit.length, True, hit.known_secret, now, now, self._status_for(fp, fid, hit.rule_id),
                hit.confidence, hit.decoding, None, None, cause, remediation, run_start, self.scan_id))
            self.stats.findings += 1
        for s in result.skipped:
            self.skip(ctx.environment, ctx.flow_id, run_id, unit.action, unit.side, s.reason,
                      f"{s.json_path} {s.detail}".strip(), unit.repetition)
        for d in result.dropped:
            self.batch.filtered.append((self.scan_id, ctx.environment, ctx.flow_id, run_id, unit.action,
                                        unit.side, d.json_path, d.rule_id, d.filter, now))

    def cause(self, ctx: FlowContext, action: str, side: str, fp: str | None, literal: str | None = None,
              detected: bool = False):
        """The posture cause of a secret seen in `action`'s `side`, memoised per flow.

        Right after detection (`detected`), `literal` says where the value is typed into the action
        (posture.literal_path, computed where the secret was: PA005/PA004) or None (it arrived at run
        time); the answer is kept under the secret's fingerprint, so a body reused from the content
        cache still gets the precise cause."""
        if ctx.definition is None:
            return None
        key = (action, side, fp) if detected or (action, side, fp) in ctx.causes else (action, side)
        if key not in ctx.causes:
            try:
                ctx.causes[key] = posture.explain(ctx.definition, action, side, literal=literal)
            except Exception:  # noqa: BLE001 - no cause is better than no finding
                ctx.causes[key] = None
        return ctx.causes[key]

    def action_strings(self, ctx: FlowContext, action: str) -> list:
        """The action's strings, for telling a typed value from a run-time one where detection runs."""
        if ctx.definition is None:
            return []
        if action not in ctx.strings:
            try:
                ctx.strings[action] = posture.action_strings(ctx.definition, action)
            except Exception:  # noqa: BLE001 - an odd definition costs the PA005 cause, not the scan
                ctx.strings[action] = []
        return ctx.strings[action]

    async def flush(self, force: bool = False) -> None:
        if force or self.batch_runs >= self.opt.batch_runs or len(self.batch) > 5000:
            batch, self.batch, self.batch_runs = self.batch, Batch.empty(), 0
            self.store.write_batch(batch)
            self.on_progress(self.stats, self.http)

    # -- the walk ------------------------------------------------------------------------------

    async def run(self) -> CrawlStats:
        self.engine_version = cache_version(self.engine, self.key)
        # after the vaults loaded: the workers get the whole known-value set (keyed hashes only)
        self.start_detectors()
        try:
            return await self._run()
        finally:
            if self.proc_pool is not None:
                self.proc_pool.shutdown(wait=True, cancel_futures=True)

    def start_detectors(self) -> None:
        """Detection in `jobs` worker processes (both cores; results leave them redacted), or on the
        one detector thread for `--jobs 1` and for `record`, whose scrubber must see each secret."""
        self.proc_pool = None
        if self.opt.jobs > 1 and self.opt.secret_sink is None:
            import multiprocessing

            e = self.engine
            self.proc_pool = ProcessPoolExecutor(
                max_workers=self.opt.jobs, mp_context=multiprocessing.get_context("spawn"),
                initializer=init_detect_worker,
                initargs=(e.known, self.key, e.min_confidence, e.custom, e.matcher))

    async def _run(self) -> CrawlStats:
        log.info("listing environments")
        try:
            envs = await self.api.environments(on_rehome=self.rehomed(None))
        except FlowleaksHttpError as exc:
            if isinstance(exc, ApiError) and exc.status in (401, 403):  # the token, not one environment
                from scanner.net.http import TokenRejected

                raise TokenRejected(exc, self.api.audience, self.api.as_admin) from None
            self.skip(None, None, None, None, None, exc.reason, f"listing environments: {exc}")
            await self.flush(force=True)
            return self.stats
        wanted = {e.lower() for e in self.opt.environments}
        if wanted:
            found = {e.name.lower() for e in envs} | {(e.display_name or "").lower() for e in envs}
            for missing in sorted(wanted - found):
                self.stats.unmatched_scope.append(f"--env {missing}")
                self.skip(missing, None, None, None, None, "not found", "environment not listed by the API")
            if wanted - found:
                self.stats.known_scope = sorted(f"{e.name} ({e.display_name})" if e.display_name else e.name
                                                for e in envs)
            envs = [e for e in envs if e.name.lower() in wanted or (e.display_name or "").lower() in wanted]
        log.info("%d environment(s) in scope", len(envs))
        self.stats.environments_planned = len(envs)
        self.store.upsert_environments([(e.name, e.display_name, e.location, e.is_default,
                                         e.flow_endpoint, self.scan_id) for e in envs])
        for env in envs:
            await self.scan_environment(env.name)
        self._check_scope(envs)
        await self.flush(force=True)
        self.detect_pool.shutdown(wait=True)
        return self.stats

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
            self.skip(None, None, None, None, None, "nothing in scope",
                      "the API listed no flows: an identity in maker scope sees only its own flows; use "
                      "--as-admin, and register the app as a Power Platform management app")
        elif not envs and not self.stats.unmatched_scope:
            self.skip(None, None, None, None, None, "nothing in scope",
                      "the API listed no environments: check the identity's Power Platform access")

    async def scan_environment(self, env: str) -> None:
        wanted = {f.lower() for f in self.opt.flows}
        tasks: list[asyncio.Task] = []
        flow_slots = asyncio.Semaphore(8)
        log.info("listing flows of %s", env)
        try:
            async for item in self.api.flows(env, on_rehome=self.rehomed(env)):
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
                await flow_slots.acquire()
                task = asyncio.create_task(self._flow_task(env, item, flow_slots))
                tasks.append(task)
        except FlowleaksHttpError as exc:
            self.flow_listing_failed = True
            self.skip(env, None, None, None, None, exc.reason, f"listing flows: {exc}")
        if tasks:
            await asyncio.gather(*tasks)
        self.stats.environments_scanned += 1
        await self.flush(force=True)

    async def _flow_task(self, env: str, item: dict, slots: asyncio.Semaphore) -> None:
        try:
            await self.scan_flow(env, item)
        finally:
            slots.release()

    async def scan_flow(self, env: str, item: dict) -> None:
        flow_id = str(item.get("name"))
        props = as_dict(item.get("properties"))
        ctx = FlowContext(env, flow_id, props.get("displayName"), None, {})
        modified = props.get("lastModifiedTime")
        stored_modified, stored_hash = self.store.flow_modified(env, flow_id)
        # Nightly: an unchanged flow is not re-read unless it has new runs to explain.
        if not (self.opt.incremental and stored_hash and modified and modified == stored_modified):
            await self.load_definition(ctx, props)
        else:
            ctx.props = props
            self.store.touch_flow(env, flow_id, self.scan_id)
        ok = await self.scan_runs(ctx)
        if ok:
            await self.resolve_gone(ctx)
        if ok and not self.flow_blocking.get((env, flow_id)):
            self.stats.flows_scanned += 1
            if self.opt.incremental:
                self.batch.watermarks.append((env, flow_id, ctx.newest_start, sorted(ctx.running),
                                              self.scan_id))

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
            self.skip(env, flow_id, None, None, "definition", exc.reason, f"reading flow: {exc}")
        definition = props.get("definition")
        ctx.definition = definition if isinstance(definition, dict) else None
        # Odd parts are recorded (flow named, JSON path) and ignored by the readers; the flow's runs
        # are still scanned and the sweep goes on.
        for problem in defn.problems(definition) if definition is not None else ():
            self.skip(env, flow_id, None, None, "definition", "definition unreadable",
                      f"{ctx.display_name or flow_id}: {problem}")
        ctx.action_types = defn.action_types(ctx.definition) if ctx.definition else {}
        ctx.sources = posture.secret_sources(ctx.definition) if ctx.definition else {}
        ctx.secured = defn.secured_sides(ctx.definition) if ctx.definition else {}
        ctx.display_name = props.get("displayName") or ctx.display_name
        d = ctx.definition
        self.store.upsert_flows([{
            "environment": env, "flow_id": flow_id, "display_name": props.get("displayName"),
            "creator": as_dict(props.get("creator")).get("objectId"), "state": props.get("state"),
            "definition_hash": posture.definition_hash(d) if d else None,
            "created_time": parse_api_time(props.get("createdTime")),
            "last_modified_time": parse_api_time(props.get("lastModifiedTime")),
            "modified_marker": props.get("lastModifiedTime"),
            "trigger_type": defn.trigger_type(d) if d else None,
            "connectors": defn.connectors(d) if d else None,
            "scan_id": self.scan_id}])
        if d:
            try:
                found = await asyncio.get_running_loop().run_in_executor(
                    self.detect_pool, lambda: posture.analyze_definition(
                        d, flow_name=ctx.display_name or flow_id, engine=self.engine, key=self.key))
            except Exception as exc:  # noqa: BLE001 - one odd definition must not stop the sweep
                self.skip(env, flow_id, None, None, "definition", "posture error", describe(exc))
            else:
                self.add_posture(ctx, found)

    def add_posture(self, ctx: FlowContext, found: list) -> None:
        """Posture findings: detector 'posture', run fields null; the ones no longer found are resolved."""
        now = utcnow()
        keep = []
        for pf in found:
            fp = pf.fingerprint or fingerprint(self.key, f"posture\x1f{ctx.environment}\x1f{ctx.flow_id}"
                                                          f"\x1f{pf.rule_id}\x1f{pf.action}\x1f{pf.json_path}")
            fid = finding_id(ctx.environment, ctx.flow_id, None, pf.action, None, "definition", pf.json_path,
                             pf.rule_id, fp)
            keep.append(fid)
            self.batch.findings.append((
                fid, self.scan_id, ctx.environment, ctx.flow_id, None, pf.action, None, "definition",
                pf.json_path, pf.rule_id, "posture", fp, pf.preview, None, None, None, now, now,
                self._status_for(fp, fid, pf.rule_id), None, None, pf.severity, pf.message,
                f"{pf.rule_id} on '{pf.action}'", pf.remediation, None, self.scan_id))
            self.stats.findings += 1
        self.batch.posture_seen.append((ctx.environment, ctx.flow_id, keep))

    def add_environment_posture(self, environment: str, found: list, resolve: bool = True) -> None:
        """Environment-level posture findings (PA007 read from Dataverse): flow_id and run fields null,
        action = the variable's schema name, side 'definition'. With `resolve` (the read was complete),
        the environment's earlier PA007 findings not found now are resolved."""
        ctx = FlowContext(environment, None, None, None, {})  # type: ignore[arg-type]
        before = len(self.batch.findings)
        self.add_posture(ctx, found)
        self.batch.posture_seen.pop()  # keyed by flow; environment-level ones are resolved below
        if resolve:
            keep = [row[0] for row in self.batch.findings[before:]]
            self.store.query("UPDATE findings SET status = 'resolved' WHERE detector = 'posture' "
                             "AND rule_id = 'PA007' AND environment = ? AND flow_id IS NULL "
                             "AND status <> 'resolved' AND NOT list_contains(?, finding_id)",
                             [environment, keep])

    async def resolve_gone(self, ctx: FlowContext) -> None:
        """Resolve run findings whose run the API no longer serves: not in this complete listing of the
        window, or 404 when read. Findings of older runs outside the window are checked by reading the
        run (the service's retention varies by plan: the clock alone never resolves anything)."""
        env, flow = ctx.environment, ctx.flow_id
        con = self.store.con
        if ctx.window is not None:
            low, high, exclusive = ctx.window
            self.stats.resolved += lifecycle.resolve_unlisted(con, env, flow, low, high, sorted(ctx.listed),
                                                              low_exclusive=exclusive)
            oldest = datetime.now(timezone.utc) - timedelta(days=RETENTION_DAYS)
            before = min(low, oldest) if low is not None else oldest
            for run_id in lifecycle.runs_to_probe(con, env, flow, before):
                try:
                    await self.api.get_run(env, flow, run_id)
                except ApiError as exc:
                    if exc.code == "WorkflowRunNotFound" or exc.status == 404:
                        ctx.gone.append(run_id)
                except FlowleaksHttpError:  # unknown: the finding stays open
                    pass
        if ctx.gone:
            log.info("%s/%s: %d run(s) no longer served; their findings are resolved", env, flow, len(ctx.gone))
            self.stats.resolved += lifecycle.resolve_runs(con, env, flow, ctx.gone)

    async def scan_runs(self, ctx: FlowContext) -> bool:
        """List the flow's runs (window, or after the watermark) and scan each; False if listing failed."""
        env, flow_id = ctx.environment, ctx.flow_id
        after, running = self.store.watermark(env, flow_id) if self.opt.incremental else (None, [])
        if after:
            filt = run_filter(None, self.opt.until, self.opt.status, after_raw=after)
        else:
            since = self.opt.since or (datetime.now(timezone.utc) - timedelta(days=RETENTION_DAYS))
            filt = run_filter(since, self.opt.until, self.opt.status)
        ctx.newest_start = after[:-1] if after else None
        # The server filters; we check again, so a service that ignores $filter can't widen the sweep.
        low = sortable_time(after) if after else sortable_time(odata_time(since))
        high = sortable_time(odata_time(self.opt.until)) if self.opt.until else None
        status = (self.opt.status or "").lower()

        def wanted(run: dict) -> bool:
            props = as_dict(run.get("properties"))
            start = sortable_time(props.get("startTime"))
            if start is not None and low is not None and (start <= low if after else start < low):
                return False
            if start is not None and high is not None and start >= high:
                return False
            return not status or text(props.get("status")).lower() in ("", status)

        tasks: list[asyncio.Task] = []
        ok = True

        async def submit(run: dict) -> None:
            if not ctx.loaded:  # new runs to explain: an unchanged flow's definition is read now
                await self.load_definition(ctx, ctx.props)
            self.stats.runs_planned += 1
            await self.run_slots.acquire()
            tasks.append(asyncio.create_task(self._run_task(ctx, run)))

        listed = ctx.listed
        log.debug("listing runs of %s/%s (%s)", env, flow_id, filt)
        try:
            async for page in self.api.runs(env, flow_id, filt, on_rehome=self.rehomed(env, flow_id)):
                for run in page:
                    if not wanted(run):
                        self.stats.outside_window += 1
                        continue
                    listed.add(str(run.get("name")))
                    await submit(run)
                # drop finished tasks so a 50,000-run flow doesn't keep 50,000 task objects
                tasks = [t for t in tasks if not t.done()]
            for run_id in running:  # runs still Running last time: read them again by name
                if run_id not in listed:
                    await submit({"name": run_id})
        except FlowleaksHttpError as exc:
            ok = False
            self.skip(env, flow_id, None, None, None, exc.reason, f"listing runs: {exc}")
        if tasks:
            await asyncio.gather(*tasks)
        if ok and not status:  # a status filter lists only some runs: absence proves nothing then
            ctx.window = ((parse_watermark(after) if after else since), self.opt.until, bool(after))
        return ok

    async def _run_task(self, ctx: FlowContext, run: dict) -> None:
        try:
            await self.scan_run(ctx, run)
        except FlowleaksHttpError as exc:
            self.skip(ctx.environment, ctx.flow_id, str(run.get("name")), None, None, exc.reason, str(exc))
        finally:
            self.run_slots.release()
        self.batch_runs += 1
        await self.flush()

    async def scan_run(self, ctx: FlowContext, listed: dict) -> None:
        env, flow, run_id = ctx.environment, ctx.flow_id, str(listed.get("name"))
        try:
            run = await self.api.get_run(env, flow, run_id)
        except ApiError as exc:
            if exc.code == "WorkflowRunNotFound" or exc.status == 404:
                self.skip(env, flow, run_id, None, None, "gone", str(exc))
                ctx.gone.append(run_id)
                return
            raise
        meta: list[tuple] = []
        units = await self.collect_units(ctx, run_id, run, meta)
        props = as_dict(run.get("properties")) or as_dict(listed.get("properties"))
        run_start = parse_api_time(props.get("startTime"))
        refreshed: dict[tuple, Any] | None = None
        scanned = skipped = 0
        for unit in units:
            if await self.scan_unit(ctx, run_id, run_start, unit):
                scanned += 1
                continue
            if refreshed is None:  # an expired link: re-read the run once for fresh links
                again = await self.api.get_run(env, flow, run_id)
                refreshed = {(u.action, u.repetition, u.side): u
                             for u in await self.collect_units(ctx, run_id, again)}
            fresh = refreshed.get((unit.action, unit.repetition, unit.side))
            if fresh is None or fresh.link is None:  # the re-read run lacks it: still the expired link
                self.skip(env, flow, run_id, unit.action, unit.side, "expired",
                          "content link expired and the re-read run has no fresh link", unit.repetition)
                skipped += 1
                continue
            if await self.scan_unit(ctx, run_id, run_start, fresh, last_try=True):
                scanned += 1
            else:
                skipped += 1
        self.batch.actions.extend((env, flow, run_id, *m, self.scan_id) for m in meta)
        self.batch.runs.append((env, flow, run_id, run_start, parse_api_time(props.get("endTime")),
                                props.get("status"), self.scan_id, as_dict(props.get("trigger")).get("name"),
                                len(meta), scanned, skipped, utcnow()))
        self.stats.runs_scanned += 1
        raw_start = text(props.get("startTime")).rstrip("Z")
        if raw_start and (ctx.newest_start is None or raw_start > ctx.newest_start):
            ctx.newest_start = raw_start
        if props.get("status") in ("Running", "Waiting", "Paused", "Suspended"):
            ctx.running.add(run_id)

    async def collect_units(self, ctx: FlowContext, run_id: str, run: dict,
                            meta: list[tuple] | None = None) -> list[ContentUnit]:
        """Every (action, repetition, side, link) of a run, from one `$expand` read when possible.

        `meta` collects one row per action execution for the `actions` table."""
        props = as_dict(run.get("properties"))
        units: list[ContentUnit] = []
        trigger = as_dict(props.get("trigger"))
        units.extend(units_of(str(trigger.get("name") or "trigger"), None, "trigger", trigger))
        actions = props.get("actions")
        if not isinstance(actions, dict):
            actions = {}
        # An action with no links at all is a fallback case, unless the definition or the run says
        # why: a container has no content, a fully secured action may have its links left out, and an
        # action that did not run (Skipped) or has not finished has none yet.
        missing = [n for n, a in actions.items()
                   if isinstance(a, dict) and "inputsLink" not in a and "outputsLink" not in a
                   and not a.get("repetitionCount")
                   and text(a.get("status")).lower() not in NOT_RUN_STATUSES
                   and ctx.action_types.get(n, "").lower() not in CONTAINER_TYPES
                   and ctx.secured.get(n, frozenset()) < {"inputs", "outputs"}]
        if not actions or missing:
            # $expand gave no actions or left links out: the actions list has them (one paged call).
            listed = await self.api.actions(ctx.environment, ctx.flow_id, run_id,
                                            on_rehome=self.rehomed(ctx.environment, ctx.flow_id, run_id))
            for item in listed:
                name = str(item.get("name"))
                if name in actions and name not in missing:
                    continue
                actions[name] = as_dict(item.get("properties"))

        def note(name: str, rep: str | None, p: dict) -> None:
            if meta is not None:
                i, o = p.get("inputsLink"), p.get("outputsLink")
                meta.append((name, rep, p.get("status"), p.get("code"),
                             i is not None and is_secured(i), o is not None and is_secured(o),
                             (i or {}).get("contentSize") if isinstance(i, dict) else None,
                             (o or {}).get("contentSize") if isinstance(o, dict) else None))

        for name, action in actions.items():
            if not isinstance(action, dict):
                continue
            note(name, None, action)
            if action.get("repetitionCount") or action.get("repetitionIndexes"):
                try:
                    reps = await self.api.repetitions(
                        ctx.environment, ctx.flow_id, run_id, name,
                        on_rehome=self.rehomed(ctx.environment, ctx.flow_id, run_id, name))
                except FlowleaksHttpError as exc:  # this loop's iterations are lost, not the run's other actions
                    self.skip(ctx.environment, ctx.flow_id, run_id, name, "action_inputs", exc.reason,
                              f"listing repetitions: {exc}")
                    continue
                if reps:
                    for rep in reps:
                        rprops = as_dict(rep.get("properties"))
                        note(name, str(rep.get("name")), rprops)
                        units.extend(units_of(name, str(rep.get("name")), "action", rprops))
                    continue
            if ctx.action_types.get(name, "").lower() in CONTAINER_TYPES and \
                    "inputsLink" not in action and "outputsLink" not in action:
                continue
            units.extend(units_of(name, None, "action", action))
        return units

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
        self.skip(ctx.environment, ctx.flow_id, run_id, unit.action, unit.side, reason, detail, unit.repetition)

    async def scan_unit(self, ctx: FlowContext, run_id: str, run_start: str | None, unit: ContentUnit,
                        last_try: bool = False) -> bool:
        """Fetch and scan one content link. False only for an expired link worth one more try."""
        env, flow = ctx.environment, ctx.flow_id
        link = unit.link
        if link is None:
            self.missing_link(ctx, run_id, unit)
            return True
        if is_secured(link):
            detail = "secureData" if isinstance(link, dict) and link.get("secureData") else "no uri"
            self.skip(env, flow, run_id, unit.action, unit.side, "secured", detail, unit.repetition)
            return True
        source = ctx.sources.get(unit.action) if unit.side == "action_outputs" else None
        key = valid_md5_key(link) if self.opt.reuse_content else None
        if key and source:  # the same body means more when it is a secret source's output
            key = f"{key}|{source}"
        if key:
            cached = self.reuse.get(key)
            if cached is None:
                stored = self.store.content_result(key, self.engine_version)
                cached = ContentResult.from_json(stored) if stored else None
            if cached is not None:
                self._remember(key, cached)
                self.stats.content_reused += 1
                self.add_result(ctx, run_id, run_start, unit, cached)
                return True
        try:
            body = await self.http.fetch_content(str(link["uri"]))
        except LinkExpired as exc:
            if not last_try:
                return False
            self.skip(env, flow, run_id, unit.action, unit.side, exc.reason, str(exc), unit.repetition)
            return True
        except FlowleaksHttpError as exc:
            self.skip(env, flow, run_id, unit.action, unit.side, exc.reason, str(exc), unit.repetition)
            return True
        self.stats.content_fetched += 1
        strings = self.action_strings(ctx, unit.action)
        loop = asyncio.get_running_loop()
        if self.proc_pool is not None:
            result, literals = await loop.run_in_executor(self.proc_pool, detect_in_worker, body, unit.side,
                                                          source, strings)
        else:
            result, literals = await loop.run_in_executor(self.detect_pool, self._detect, body, unit.side,
                                                          source, strings)
        for h, literal in zip(result.hits, literals):
            self.cause(ctx, unit.action, unit.side, h.fingerprint, literal=literal, detected=True)
        if key:
            self._remember(key, result)
            self.batch.content.append((key, self.engine_version, result.to_json(), utcnow()))
        self.add_result(ctx, run_id, run_start, unit, result)
        return True

    def _remember(self, key: str, result: ContentResult) -> None:
        self.reuse[key] = result
        self.reuse.move_to_end(key)
        if len(self.reuse) > 20000:
            self.reuse.popitem(last=False)

    def _detect(self, body: bytes, side: str, source: str | None = None,
                strings: list | None = None) -> tuple[ContentResult, list]:
        """Runs in the detector thread (`--jobs 1`, `record`)."""
        return detect_body(self.engine, self.key, body, side, source, strings, self.opt.secret_sink)


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
    literals = [posture.literal_path(strings, h.secret) if strings else None for h in found]
    return ContentResult(hits, tuple(raw.skipped), tuple(raw.dropped)), literals


# -- the detection worker processes (`jobs` > 1) ---------------------------------------------------
_WORKER: tuple[Any, bytes] | None = None


def init_detect_worker(known: Any, key: bytes, min_confidence: str, custom: Any, matcher: str) -> None:
    global _WORKER
    from scanner.pipeline.worker_engine import start_worker_engine

    _WORKER = (start_worker_engine(known, min_confidence, custom, matcher), key)


def detect_in_worker(body: bytes, side: str, source: str | None, strings: list) -> tuple[ContentResult, list]:
    assert _WORKER is not None, "init_detect_worker did not run"
    engine, key = _WORKER
    return detect_body(engine, key, body, side, source, strings)


def parse_watermark(raw: str) -> datetime:
    """A watermark's API text (7 fractional digits, maybe 'Z') as a UTC datetime (microseconds)."""
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z?", raw.strip())
    if not m:
        raise ValueError(f"not a watermark: {raw!r}")
    return datetime.fromisoformat(f"{m.group(1)}.{(m.group(2) or '')[:6].ljust(6, '0')}").replace(tzinfo=timezone.utc)


def sortable_time(value: Any) -> str | None:
    """API time text as 'YYYY-MM-DDTHH:MM:SS.fffffff' (UTC), comparable as a string; None if it isn't."""
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d+))?Z?", value) if isinstance(value, str) else None
    return f"{m.group(1)}.{(m.group(2) or '')[:7].ljust(7, '0')}" if m else None


def as_dict(value: Any) -> dict:
    """API objects are dicts in every documented shape; anything else is treated as empty, not a crash."""
    return value if isinstance(value, dict) else {}


def text(value: Any) -> str:
    return value if isinstance(value, str) else ""


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


