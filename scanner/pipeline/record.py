"""Recording, a part of the crawl (scanner/pipeline/crawl.py): skips, findings and rows go into the
batch, which `flush` queues to the one writer thread (writer.py, Store.write_batch: one transaction
each); run findings whose run the API no longer serves are resolved, on that thread too.
"""
from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Callable

from detectors.base import fingerprint

from scanner.net.errors import ApiError, FlowleaksHttpError
from scanner.pipeline.plan import FlowContext
from scanner.redact import redact_text
from scanner.skip_reasons import NON_BLOCKING_SKIPS
from scanner.store import lifecycle
from scanner.store.database import Batch, Store, finding_id, utcnow

if TYPE_CHECKING:
    from scanner.pipeline.detection import ContentResult
    from scanner.pipeline.runs import ContentUnit

log = logging.getLogger("flowleaks.crawl")


def count_skip(skipped: Counter, reason: str, detail: str) -> tuple[bool, str]:
    """One skip counted under its reason (the crawl's and scan-files' alike). Returns whether it
    blocks a complete scan (one list: scanner/skip_reasons.py) and its detail as it may be stored and
    logged: server messages can echo URLs (with their sig) or values, so redacted, then bounded."""
    skipped[reason] += 1
    return reason not in NON_BLOCKING_SKIPS, redact_text(detail)[:500]


class Recording:
    """The crawl's recording methods (state: Crawl.__init__)."""

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

    async def flush(self, force: bool = False) -> None:
        if force or self.batch_runs >= self.opt.batch_runs or len(self.batch) > 5000:
            batch, self.batch, self.batch_runs = self.batch, Batch.empty(), 0
            # queued, not awaited: the loop goes on fetching while the writer stores it (bounded)
            await self.db.write(Store.write_batch, batch)
            self.on_progress(self.stats, self.http)

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
            # in the writer's order: before the batch holding this read's findings is written
            self.db.enqueue(Store.resolve_environment_posture, environment, keep)

    async def resolve_gone(self, ctx: FlowContext) -> None:
        """Resolve run findings whose run the API no longer serves: not in this complete listing of the
        window, or 404 when read. Findings of older runs outside the window are checked by reading the
        run (the service's retention varies by plan: the clock alone never resolves anything)."""
        env, flow = ctx.environment, ctx.flow_id
        if ctx.window is not None:
            low, high, exclusive = ctx.window
            self.stats.resolved += await self.db.run(_resolve_unlisted, env, flow, low, high, sorted(ctx.listed),
                                                     exclusive)
            oldest = datetime.now(timezone.utc) - timedelta(days=lifecycle.RETENTION_DAYS)
            before = min(low, oldest) if low is not None else oldest
            for run_id in await self.db.run(_runs_to_probe, env, flow, before):
                try:
                    await self.api.get_run(env, flow, run_id)
                except ApiError as exc:
                    if exc.code == "WorkflowRunNotFound" or exc.status == 404:
                        ctx.gone.append(run_id)
                except FlowleaksHttpError:  # unknown: the finding stays open
                    pass
        if ctx.gone:
            log.info("%s/%s: %d run(s) no longer served; their findings are resolved", env, flow, len(ctx.gone))
            self.stats.resolved += await self.db.run(_resolve_runs, env, flow, ctx.gone)


# The lifecycle queries take the connection: these run on the writer thread, which owns it.
def _resolve_unlisted(store: Store, env: str, flow: str, low, high, listed: list[str], exclusive: bool) -> int:
    return lifecycle.resolve_unlisted(store.con, env, flow, low, high, listed, low_exclusive=exclusive)


def _runs_to_probe(store: Store, env: str, flow: str, before: datetime) -> list[str]:
    return lifecycle.runs_to_probe(store.con, env, flow, before)


def _resolve_runs(store: Store, env: str, flow: str, gone: list[str]) -> int:
    return lifecycle.resolve_runs(store.con, env, flow, gone)
