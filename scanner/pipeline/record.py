"""The record stage's front: skips, findings and rows go into the batch, which `flush` queues to the
one writer thread (writer.py, Store.write_batch: one transaction each). Every stage reports its
skips here; a run's rows land when the content stage is done with it (`run_done`), and a finished
flow's gone runs are resolved and its watermark advanced in the writer's order (runs.py:
finish_flow), after the batch rows of its runs.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from detectors.base import fingerprint

from scanner.api.flow_api import as_dict, parse_api_time, text
from scanner.redact import redact_text
from scanner.skip_reasons import NON_BLOCKING_SKIPS
from scanner.store.database import Batch, Store, finding_id, utcnow
from scanner.store.suppressions import ActiveSuppressions

if TYPE_CHECKING:
    from scanner.pipeline.content import RunResult
    from scanner.pipeline.crawl import CrawlOptions, CrawlStats
    from scanner.pipeline.detection import ContentResult
    from scanner.pipeline.plan import FlowContext
    from scanner.pipeline.runs import ContentUnit
    from scanner.pipeline.writer import StoreWriter

log = logging.getLogger("flowleaks.crawl")
BATCH_ROWS = 5000  # rows of any kind that flush a batch before its `batch_runs` runs are in


def count_skip(skipped: Counter, reason: str, detail: str) -> tuple[bool, str]:
    """One skip counted under its reason (the crawl's and scan-files' alike). Returns whether it
    blocks a complete scan (one list: scanner/skip_reasons.py) and its detail as it may be stored and
    logged: server messages can echo URLs (with their sig) or values, so redacted, then bounded."""
    skipped[reason] += 1
    return reason not in NON_BLOCKING_SKIPS, redact_text(detail)[:500]


class Recorder:
    """The batch being filled, the suppressions findings are checked against, and the flows whose
    watermark must not advance (blocking skips)."""

    def __init__(self, db: StoreWriter, key: bytes, options: CrawlOptions, scan_id: str, stats: CrawlStats,
                 on_progress: Callable[[], None]):
        self.db, self.key, self.opt, self.scan_id, self.stats = db, key, options, scan_id, stats
        self.on_progress = on_progress
        self.batch = Batch.empty()
        self.batch_runs = 0
        self.suppressed: ActiveSuppressions | None = None  # read through the writer: `prepare`
        self.flow_blocking: dict[tuple, int] = {}  # (env, flow) -> blocking skips: no watermark advance

    async def prepare(self) -> None:
        """What is read before anything is recorded (findings take their suppression status)."""
        if self.suppressed is None:
            self.suppressed = await self.db.run(ActiveSuppressions.load)

    # -- skips and findings --------------------------------------------------------------------

    def skip(self, env: str | None, flow: str | None, run: str | None, action: str | None,
             side: str | None, reason: str, detail: str = "", repetition: str | None = None) -> None:
        blocking, detail = count_skip(self.stats.skipped, reason, detail)  # detail: redacted from here on
        if blocking:
            self.stats.blocking_skips += 1
            if side != "definition":  # the watermark is about runs: a definition problem doesn't hold it
                self.flow_blocking[(env, flow)] = self.flow_blocking.get((env, flow), 0) + 1
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
        return self.suppressed.status(fp, fid, rule)

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
            c = ctx.cause(unit.action, unit.side, fp)
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

    def add_content_result(self, key: str, engine_version: str, result: ContentResult) -> None:
        """A scanned body's redacted result, kept for the next scan that sees the same body."""
        self.batch.content.append((key, engine_version, result.to_json(), utcnow()))

    def add_run(self, done: RunResult) -> None:
        """A run the content stage is done with: its row and its actions' rows."""
        ctx, props = done.ctx, done.props
        env, flow, run_id = ctx.environment, ctx.flow_id, done.run_id
        self.batch.actions.extend((env, flow, run_id, *m, self.scan_id) for m in done.meta)
        self.batch.runs.append((env, flow, run_id, done.run_start, parse_api_time(props.get("endTime")),
                                props.get("status"), self.scan_id, as_dict(props.get("trigger")).get("name"),
                                len(done.meta), done.scanned, done.skipped, utcnow()))
        self.stats.runs_scanned += 1
        raw_start = text(props.get("startTime")).rstrip("Z")
        if raw_start and (ctx.newest_start is None or raw_start > ctx.newest_start):
            ctx.newest_start = raw_start
        if props.get("status") in ("Running", "Waiting", "Paused", "Suspended"):
            ctx.running.add(run_id)

    async def run_ended(self) -> None:
        """One more run is in the batch (or was given up): flush when the batch is full."""
        self.batch_runs += 1
        await self.flush()

    async def flush(self, force: bool = False) -> None:
        if force or self.batch_runs >= self.opt.batch_runs or len(self.batch) > BATCH_ROWS:
            batch, self.batch, self.batch_runs = self.batch, Batch.empty(), 0
            # queued, not awaited: the loop goes on fetching while the writer stores it (bounded)
            await self.db.write(Store.write_batch, batch)
            self.on_progress()

    def add_watermark(self, ctx: FlowContext) -> None:
        self.batch.watermarks.append((ctx.environment, ctx.flow_id, ctx.newest_start, sorted(ctx.running),
                                      self.scan_id))

    # -- posture ---------------------------------------------------------------------------------

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
        from scanner.pipeline.plan import FlowContext

        ctx = FlowContext(environment, None, None, None, {})  # type: ignore[arg-type]
        before = len(self.batch.findings)
        self.add_posture(ctx, found)
        self.batch.posture_seen.pop()  # keyed by flow; environment-level ones are resolved below
        if resolve:
            keep = [row[0] for row in self.batch.findings[before:]]
            # in the writer's order: before the batch holding this read's findings is written
            self.db.enqueue(Store.resolve_environment_posture, environment, keep)

    # -- run findings whose run is gone (the lifecycle queries, on the writer thread) ------------

    async def resolve_unlisted(self, env: str, flow: str, low: Any, high: Any, listed: list[str],
                               exclusive: bool) -> int:
        return await self.db.run(Store.resolve_unlisted, env, flow, low, high, listed, exclusive)

    async def runs_to_probe(self, env: str, flow: str, before: datetime) -> list[str]:
        return await self.db.run(Store.runs_to_probe, env, flow, before)

    async def resolve_runs(self, env: str, flow: str, gone: list[str]) -> int:
        return await self.db.run(Store.resolve_runs, env, flow, gone)
